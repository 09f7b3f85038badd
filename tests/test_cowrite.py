"""Writing a song together (lyricgpt.cowrite), without a server: seeded candidate lines are the same
alone, in the engine's batch and one at a time; a line goes where it should (after a whole stanza, a new
one; in place of a line, the lines after it kept) and keeps the song's rhyme; an edit keeps the model's
characters that are left; a song the page wrote becomes a draft as it was shown; a song continued goes on
from the whole draft and stops at the song's limit; and every bad input gets a message naming it."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from lyricgpt.cowrite import MAX_LINE_CHARS, Slot, continue_song, offer_lines, slot
from lyricgpt.draft import UNDO_STEPS, Draft, History, keepsake, song_draft, summary
from lyricgpt.engine import Engine
from lyricgpt.form import FormSpec
from lyricgpt.sampler import LINE_GRACE, SamplingSettings
from lyricgpt.serving import stream_song
from lyricgpt.song_request import (MAX_CANDIDATES, MAX_SONG_TEXT, InputError, LinesRequest, parse_continue, parse_line,
                                   parse_lines_request, parse_request)
from lyricgpt.takes import write_song

SONG = "Hello there\nmy old friend"
STANZA = "The night is cold\nThe story told\nA fire burns bright\nInto the night"
RHYMED = FormSpec("AABB")


@pytest.fixture(scope="module")
def engine(tiny_lm):
    engine = Engine(tiny_lm.model, max_batch=8, max_waiting=8, lexicon=tiny_lm.lexicon, chars=tiny_lm.tokenizer.chars)
    yield engine
    engine.close()


def last(updates):
    *_, final = updates
    return final


def texts(offer) -> list[str]:
    return [c.text for c in offer.candidates]


def mine(text: str) -> Draft:
    """A draft the person wrote."""
    return Draft(text, (None,) * len(text))


@pytest.mark.parametrize("form", [FormSpec(), FormSpec("AABB", (), True)])
def test_seeded_candidates_are_the_same_alone_in_a_batch_and_one_at_a_time(tiny_lm, engine, form):
    asked = LinesRequest(SONG, 4, 1.0, None, None, 5, form)
    alone = last(offer_lines(tiny_lm, asked, None, "voice"))
    batched = last(offer_lines(tiny_lm, asked, None, "voice", engine))
    one_by_one = [last(offer_lines(tiny_lm, replace(asked, count=1, seed=5 + i), None, "voice", engine)).candidates[0]
                  for i in range(4)]
    assert texts(alone) == texts(batched) == [c.text for c in one_by_one]
    assert [c.seed for c in batched.candidates] == [5, 6, 7, 8] and batched.next_seed == 9
    assert all(c.done for c in batched.candidates) and len(set(texts(batched))) == 4
    # A line each: never empty, no line break, at most its length and the grace to finish its line.
    assert all(0 < len(t) <= MAX_LINE_CHARS + LINE_GRACE and "\n" not in t for t in texts(batched))
    assert all(len(c.marks) == len(c.text) for c in batched.candidates)
    assert batched.status.startswith("Candidates for the next line: click one to add it to the song")
    assert " · seeds 5-8" in batched.status and (" · form: " in batched.status) == (not form.free)


def test_candidates_grow_side_by_side_and_a_busy_engine_writes_as_many_as_it_has_places_for(tiny_lm):
    asked = LinesRequest(SONG, 4, 1.0, None, None, 11)
    offers = list(offer_lines(tiny_lm, asked, None, "voice"))
    assert len(offers) > 3 and offers[0].status.startswith("Writing candidates for the next line")
    assert all(len(c.text) <= 1 for c in offers[0].candidates)  # a character each at a time, alone
    small = Engine(tiny_lm.model, max_batch=1, max_waiting=1, chars=tiny_lm.tokenizer.chars)
    try:
        offer = last(offer_lines(tiny_lm, asked, None, "voice", small))
    finally:
        small.close()
    assert texts(offer) == texts(offers[-1])[:2] and " · LyricGPT is busy: 2 of 4" in offer.status


def test_after_a_whole_stanza_the_next_line_starts_another_and_a_line_is_found_by_its_number(tiny_lm):
    assert slot(tiny_lm, STANZA, None, RHYMED) == Slot(len(STANZA), len(STANZA), "\n\n", STANZA + "\n\n")
    assert slot(tiny_lm, STANZA, None, FormSpec()).lead == "\n"  # a free song: the person decides
    assert slot(tiny_lm, STANZA + "\n", None, RHYMED).lead == "\n"  # the line ended; the stanza did not
    assert slot(tiny_lm, STANZA + "\n\n", None, RHYMED).lead == ""
    assert slot(tiny_lm, "", None, RHYMED) == Slot(0, 0, "", "")
    # Blank lines are no lines: line 5 is the first of the second stanza.
    song = STANZA + "\n\nA song of old\n"
    assert slot(tiny_lm, song, 5, RHYMED) == Slot(len(STANZA) + 2, len(song) - 1, "", STANZA + "\n\n")
    # The person left no blank line where the form wants one: the model reads one.
    assert slot(tiny_lm, STANZA + "\nA song of old", 5, RHYMED).before == STANZA + "\n\n"
    assert slot(tiny_lm, song, 1, RHYMED) == Slot(0, len("The night is cold"), "", "")


def test_a_line_rewritten_keeps_its_rhyme_and_the_lines_after_it(tiny_lm, engine):
    asked = LinesRequest(STANZA, 4, 1.0, None, None, 3, FormSpec("AABB", (), True))
    offer = last(offer_lines(tiny_lm, asked, 2, "voice", engine))
    assert offer.status.startswith("Candidates for line 2 ('The story told'): click one to put it in that line's place")
    lines = STANZA.split("\n")
    for i, candidate in enumerate(offer.candidates):
        draft = offer.chosen(tiny_lm, mine(STANZA), i)
        assert draft.text == "\n".join([lines[0], candidate.text, *lines[2:]])
        assert draft.whose_lines() == [("you", lines[0]), ("LyricGPT", candidate.text), ("you", lines[2]),
                                       ("you", lines[3])]
        last_word = re.findall(r"[A-Za-z']+", candidate.text)[-1]
        assert tiny_lm.lexicon.rhymes(last_word, "cold"), candidate.text
    # Chosen after the person changed the song: the line with that number now.
    edited = mine("A new first line\n" + STANZA)
    assert offer.chosen(tiny_lm, edited, 0).text.split("\n")[1] == offer.candidates[0].text
    with pytest.raises(InputError, match="the line must be between 1 and 1, got 2: the song has 1 line"):
        offer.chosen(tiny_lm, mine("one line"), 0)


def test_the_next_line_chosen_comes_after_the_song_on_a_line_of_its_own(tiny_lm):
    offer = last(offer_lines(tiny_lm, LinesRequest(SONG, 2, 1.0, None, None, 1), None, "voice"))
    draft = offer.chosen(tiny_lm, mine(SONG), 1)
    assert draft.text == SONG + "\n" + offer.candidates[1].text
    assert draft.as_html().startswith('<span class="seed">H</span>')
    assert draft.model_chars == len(offer.candidates[1].text)
    assert draft.as_html().endswith("".join(offer.candidates[1].marks))


def test_an_edit_keeps_the_models_characters_that_are_left_and_the_typed_ones_are_the_persons():
    model_line = Draft("the river runs away", ("m",) * 19)
    draft = model_line.replaced(0, 0, "Oh, ", [None] * 4)  # the person wrote before it
    assert draft.whose_lines() == [("both", "Oh, the river runs away")]
    edited = draft.edited("Oh, the river flowed away\nand so do I")
    assert edited.marks[:4] == (None,) * 4 and edited.marks[4:14] == ("m",) * 10  # "the river " kept
    assert edited.text[14:20] == "flowed" and set(edited.marks[14:20]) == {None}  # typed over
    assert edited.marks[20:25] == ("m",) * 5  # " away" kept
    assert edited.whose_lines()[1] == ("you", "and so do I")
    assert draft.edited(draft.text) is draft
    assert Draft("ab", ("m", "m")).edited("a") == Draft("a", (None,))  # a run shorter than KEEP_RUN is the person's


def test_undo_goes_back_a_change_at_a_time_and_keeps_as_many_as_it_may():
    history = History().then(mine("a")).then(mine("a")).then(mine("ab"))
    assert [d.text for d in history.drafts] == ["", "a", "ab"]
    assert history.undone().draft.text == "a" and History().undone() == History()
    for n in range(2 * UNDO_STEPS):
        history = history.then(mine(str(n)))
    assert len(history.drafts) == UNDO_STEPS and history.draft.text == str(2 * UNDO_STEPS - 1)


@pytest.mark.parametrize("colour, form", [(True, FormSpec()), (True, RHYMED), (False, RHYMED)])
def test_a_song_the_page_wrote_becomes_a_draft_as_it_was_shown(tiny_lm, colour, form):
    request = parse_request("Over the hills", 1.0, 200, seed="3", end_with_song=False)
    final = last(stream_song(tiny_lm, replace(request, form=form), colour=colour))
    draft = song_draft(final.colours)
    assert draft.text == final.lyric and draft.marks[:len("Over the hills")] == (None,) * len("Over the hills")
    assert draft.model_chars == len(final.lyric) - len("Over the hills")
    if colour:  # the panel's HTML again, to the rhyme letters
        assert draft.as_html() == final.colours and ('rhyme-letter' in final.colours) == bool(form.rhyme)
    else:  # a span a character, as the page's script counts them
        assert len(re.findall(r'<span(?! class="rhyme-letter")', draft.as_html())) == len(final.lyric)


def test_a_song_continued_goes_on_from_the_whole_draft_the_same_alone_and_in_a_batch(tiny_lm, engine):
    draft = mine("Hello there\nmy old").replaced(5, 5, " you", ["<span>m</span>"] * 4)  # the model's words too
    request = parse_continue(draft.text, 1.0, 60, seed="4", end_with_song=False)
    alone, batched = list(continue_song(tiny_lm, draft, request)), list(continue_song(tiny_lm, draft, request, engine))
    assert alone[-1].draft.text == batched[-1].draft.text
    final = batched[-1].draft
    new = final.text[len(draft.text):]
    # Within the model's window, what the sampler writes after it; to the length, then the end of the line.
    assert new == "".join(tiny_lm.stream(draft.text, 60, 1.0, seed=4, form=FormSpec()))
    assert final.marks[:len(draft.text)] == draft.marks and final.model_chars == draft.model_chars + len(new)
    # The first update draws the draft anew; each of the others appends, after how many of the model's came before.
    assert batched[0].added.startswith("<!--0 redraw-->" + draft.as_html())
    assert all(u.added.startswith("<!--") for u in batched[1:]) and all(u.draft is None for u in batched[:-1])
    shown = batched[0].added[len("<!--0 redraw-->"):] + "".join(re.sub(r"^<!--\d+-->", "", u.added)
                                                                 for u in batched[1:])
    assert shown == final.as_html()
    assert batched[-1].status.startswith(f"Continued: {len(new)} characters (60, then to the end of the line)")
    assert batched[-1].status.endswith(" · seed 4 · reached the length")


def test_a_song_with_a_form_continued_in_takes_is_the_song_its_takes_write(tiny_lm, engine):
    draft = mine(STANZA)
    request = parse_continue(draft.text, 1.0, 80, seed="6", end_with_song=False, rhyme="AABB", takes=3)
    alone, batched = list(continue_song(tiny_lm, draft, request)), list(continue_song(tiny_lm, draft, request, engine))
    new = batched[-1].draft.text[len(draft.text):]
    written = write_song(tiny_lm, tiny_lm.tokenizer.encode(STANZA), 80, SamplingSettings(1.0), 6, None, request.form, 3)
    assert alone[-1].draft.text == batched[-1].draft.text and new == "".join(
        tiny_lm.tokenizer.chars[s.token] for line in written for s in line)
    assert "3 takes a line" in batched[-1].status


def test_a_song_continued_to_its_end_leaves_the_end_out(ending_lm):
    request = parse_continue("Hello", 1.0, 2000, seed="3")
    final = last(continue_song(ending_lm, mine("Hello"), request))
    written = "".join(ending_lm.stream("Hello", 2000, 1.0, seed=3, end_with_song=True))
    assert final.draft.text == "Hello" + written[:-3] and final.status.endswith(" · the model ended the song")


def test_a_song_continued_stops_at_the_songs_limit(tiny_lm):
    draft = mine("la " * ((MAX_SONG_TEXT - 10) // 3))
    final = last(continue_song(tiny_lm, draft, parse_continue(draft.text, 1.0, 100, seed="1")))
    assert len(final.draft.text) == MAX_SONG_TEXT and final.status.endswith(" · reached the song's limit")
    with pytest.raises(InputError, match="as long as a song may be here"):
        last(continue_song(tiny_lm, final.draft, parse_continue(final.draft.text, 1.0, 100)))


def test_the_download_says_whose_lines_are_whose():
    draft = mine("I walked out\n\n").replaced(14, 14, "in the rain", ["m"] * 11).edited("I walked out\n\nin the rains")
    assert summary(draft) == "Written together: 2 lines (1 yours, 1 both)"
    text = keepsake(draft, "folk songs")
    assert text.startswith("You and LyricGPT (folk songs) wrote this song together.")
    assert "I walked out\n\nin the rains\n\n\nWhose lines" in text
    assert text.endswith("  1  you       I walked out\n  2  both      in the rains\n")


@pytest.mark.parametrize("args, message", [
    (("x" * (MAX_SONG_TEXT + 1), 4, 0.7), f"the song's text must be at most {MAX_SONG_TEXT:,} characters"),
    ((["a"], 4, 0.7), "the song's text must be text, got ['a']"),
    ((SONG, 0, 0.7), f"count must be between 1 and {MAX_CANDIDATES}, got 0"),
    ((SONG, 100, 0.7), f"count must be between 1 and {MAX_CANDIDATES}, got 100"),
    ((SONG, "\u0663", 0.7), "count must be a number written with the digits 0-9"),
    ((SONG, 4, 5), "temperature must be between 0 and 2, got 5")])
def test_a_bad_request_for_lines_gets_a_message_naming_the_setting(args, message):
    with pytest.raises(InputError) as e:
        parse_lines_request(*args)
    assert message in str(e.value)


@pytest.mark.parametrize("value, text, message", [
    (7, SONG, "the line must be between 1 and 2, got 7: the song has 2 lines, not counting blank ones"),
    (0, SONG, "the line must be between 1 and 2, got 0"), (None, SONG, "the line must be a number, got None"),
    ("two", SONG, "the line must be a number written with the digits 0-9, got 'two'"),
    (1, "\n \n", "the song has no line to rewrite yet")])
def test_a_line_out_of_range_gets_a_message(value, text, message):
    with pytest.raises(InputError, match=re.escape(message)):
        parse_line(value, text)


def test_a_songs_text_is_read_with_its_line_endings_made_one():
    assert parse_lines_request("a\r\nb\rc", 4, 0.7).text == "a\nb\nc"
    assert parse_continue("x" * 3000, 0.7, 10).seed_line == "x" * 3000  # longer than a first line may be
