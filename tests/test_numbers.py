"""lyricgpt.numbers: numbers and common fractions written out as a song would say them."""

from __future__ import annotations

import pytest

from lyricgpt.numbers import say, spell_numbers


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (66, "sixty-six"), (100, "one hundred"),
    (120, "one hundred and twenty"), (1000, "one thousand"), (1005, "one thousand and five"),
    (2345, "two thousand, three hundred and forty-five"), (1_000_000, "one million"),
    (3_000_021, "three million and twenty-one")])
def test_whole_numbers_in_words(n, words):
    assert say(n) == words


@pytest.mark.parametrize("text, spelled", [
    ("Route 66 and the 3 o'clock train", "Route sixty-six and the three o'clock train"),
    ("the 21st of May, 1969", "the twenty-first of May, nineteen sixty-nine"),
    ("2nd and 3rd, 12th and 20th", "second and third, twelfth and twentieth"),
    ("1900 and 1905, 2005 and 2024", "nineteen hundred and nineteen oh-five, two thousand and five and twenty twenty-four"),
    ("1,000 miles, 3.5 days", "one thousand miles, three point five days"),
    ("agent 007, call 5550123456789", "agent oh oh seven, call five five five oh one two three four five six seven eight nine"),
    ("\u00bd past, \u00be full", "a half past, three quarters full"),
    ("at 10:30 and 3:05, home by 12:00 or 18:00", "at ten thirty and three oh-five, home by twelve o'clock or eighteen hundred"),
    ("10:30pm, 7:15 A.M. and John 3:16", "ten thirty p.m., seven fifteen a.m. and John three sixteen"),
    ("no numbers here.", "no numbers here."),
])
def test_numbers_in_a_line_are_spelled_and_listed(text, spelled):
    words, pairs = spell_numbers(text)
    assert words == spelled
    for written, said in pairs:  # each pair is a number of the line and its words in the result
        assert written in text and said in words


@pytest.mark.parametrize("text", ["1" * 4301, "7" * 20_000 + ".5", "1" + ",000" * 1500])
def test_a_run_of_more_digits_than_python_converts_is_read_digit_by_digit(text):
    words, pairs = spell_numbers(text)  # int() refuses over 4,300 digits: issue 36's crash
    assert words.startswith(("one one", "one oh oh", "seven seven")) and len(pairs) == 1
