"""Our reading of the CMU Pronouncing Dictionary (lyricgpt.lexicon) against the ``pronouncing``
package (a dev dependency), on the corpus's most used words: the same pronunciations, rhyming
parts, syllables and rhymes; a word the dictionary lacks counts its syllables by vowel groups."""

from __future__ import annotations

import pronouncing
import pytest

from lyricgpt.lexicon import MIN_RHYME_USES, read_cmudict, rhyming_part, syllable_count, word_key

# Words with several pronunciations, a stress far from the end, or a vowel the spelling hides.
ODD_WORDS = ["fire", "again", "tomorrow", "river", "flower", "wind", "read", "live", "tear", "the", "a", "every",
             "heaven", "wandering", "lonely", "believe"]


def phones(word: str) -> list[str]:
    """The package's pronunciations, without the comments a few entries carry (which ours leave out)."""
    return [p.split("#")[0].strip() for p in pronouncing.phones_for_word(word)]


@pytest.fixture(scope="module")
def words(corpus_lexicon) -> list[str]:
    """The corpus's 400 most used words that the dictionary holds, then ODD_WORDS."""
    common = sorted(corpus_lexicon.counts, key=corpus_lexicon.counts.get, reverse=True)
    return [w for w in common if pronouncing.phones_for_word(w)][:400] + ODD_WORDS


def test_the_shipped_dictionary_is_the_packages(words):
    cmu = read_cmudict()
    assert [cmu.get(w) for w in words] == [tuple(phones(w)) for w in words]


def test_rhyming_parts_and_syllables_agree_with_pronouncing(words):
    every = [p for w in words for p in phones(w)]
    assert len(every) > len(words)  # some words have more than one pronunciation
    assert [rhyming_part(p) for p in every] == [pronouncing.rhyming_part(p) for p in every]
    assert [syllable_count(p) for p in every] == [pronouncing.syllable_count(p) for p in every]


def test_a_words_syllables_are_its_first_pronunciations(corpus_lexicon, words):
    assert [corpus_lexicon.syllables(w) for w in words] == [pronouncing.syllable_count(phones(w)[0]) for w in words]


def test_a_word_the_dictionary_lacks_counts_vowel_groups_and_rhymes_with_nothing(corpus_lexicon):
    for word, syllables in [("forevermore", 4), ("mornin'", 2), ("wanderin'", 3)]:
        assert not pronouncing.phones_for_word(word.strip("'"))
        assert corpus_lexicon.syllables(word) == syllables
        assert not corpus_lexicon.rhyme_keys(word) and not corpus_lexicon.rhymes(word, "morning")


def test_two_words_rhyme_as_pronouncing_says(corpus_lexicon, words):
    for a in words[:80] + ODD_WORDS:
        theirs = set(pronouncing.rhymes(a))
        # "o'" and "o" are one word to us (its quotes left out), and a word is no rhyme of itself.
        assert [corpus_lexicon.rhymes(a, b) for b in words] == [b in theirs and word_key(a) != word_key(b)
                                                               for b in words], a
        # The words a line may end on to rhyme with ``a``: the voice's own, each a rhyme.
        ours = corpus_lexicon.rhymes_for(corpus_lexicon.rhyme_keys(a), [a])
        assert set(ours) <= theirs and all(corpus_lexicon.counts[w] >= MIN_RHYME_USES for w in ours), a
