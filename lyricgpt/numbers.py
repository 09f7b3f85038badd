"""Numbers written out as words, for a model whose songs had no digits: "Route 66" reads "Route sixty-six"."""

from __future__ import annotations

import re

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand")]
ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
            "twelve": "twelfth"}
FRACTIONS = {"\u00bd": "a half", "\u2153": "a third", "\u2154": "two thirds", "\u00bc": "a quarter",
             "\u00be": "three quarters", "\u215b": "an eighth"}
# A whole number (1,000 as well as 1000), a decimal, or an ordinal (1st, 22nd, 3rd, 4th).
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?(?:st|nd|rd|th)?\b|\d+")
_LARGEST = 10**12  # beyond this a number is read digit by digit
# A time of day: 10:30, 3:05, 18:45, 10:30pm, 7:15 a.m.
_TIME = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?:\s?([AaPp])\.?[Mm]\b\.?)?(?!\d)")


def say(n: int) -> str:
    """A whole number in words, the British way: 120 is "one hundred and twenty"."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("-" + ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return ONES[n // 100] + " hundred" + (" and " + say(n % 100) if n % 100 else "")
    for size, name in SCALES:
        if n >= size:
            rest = n % size
            joint = " and " if rest < 100 else ", "
            return say(n // size) + " " + name + (joint + say(rest) if rest else "")
    raise AssertionError("unreachable")


def say_year_or_number(n: int) -> str:
    """1969 as a song says it ("nineteen sixty-nine"); other numbers as say() does."""
    if 1100 <= n < 2000 or 2010 <= n < 2100:
        high, low = divmod(n, 100)
        return say(high) + (" hundred" if low == 0 else " oh-" + ONES[low] if low < 10 else " " + say(low))
    return say(n)


def ordinal(words: str) -> str:
    """ "twenty-one" -> "twenty-first"."""
    head, sep, last = words.rpartition("-" if "-" in words.split(" ")[-1] else " ")
    last = ORDINALS.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return head + sep + last


def _words(match: re.Match) -> str:
    text = match.group()
    suffix = text[-2:] if text[-2:] in ("st", "nd", "rd", "th") else ""
    digits = text[:len(text) - len(suffix)].replace(",", "")
    whole, _, decimals = digits.partition(".")
    # 007, a phone number; the length first, as int() refuses a run of over 4,300 digits.
    if len(whole) > 1 and whole.startswith("0") or len(whole) > len(str(_LARGEST)) or int(whole) >= _LARGEST:
        words = " ".join("oh" if d == "0" else ONES[int(d)] for d in whole)
    else:
        words = say_year_or_number(int(whole)) if not (decimals or suffix) else say(int(whole))
    if decimals:
        words += " point " + " ".join(ONES[int(d)] for d in decimals)
    return ordinal(words) if suffix else words


def _time_words(time: re.Match) -> str:
    """A time as a song says it: 10:30 "ten thirty", 3:05 "three oh-five", 12:00 "twelve o'clock",
    18:00 "eighteen hundred", 10:30pm "ten thirty p.m."."""
    hours, minutes, half = int(time.group(1)), int(time.group(2)), time.group(3)
    if minutes == 0:
        words = say(hours) + (" o'clock" if hours <= 12 else " hundred")
    else:
        words = say(hours) + (" oh-" + ONES[minutes] if minutes < 10 else " " + say(minutes))
    return words + (f" {half.lower()}.m." if half else "")


def spell_numbers(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with each number and common fraction (½, ¾, ...) written in words, and the
    (as written, as words) pairs, in order."""
    spelled = []

    def swap(match: re.Match) -> str:
        time = _TIME.fullmatch(match.group())
        if time:
            words = _time_words(time)
        else:
            words = FRACTIONS[match.group()] if match.group() in FRACTIONS else _words(match)
        spelled.append((match.group(), words))
        return words

    fractions = "".join(FRACTIONS)
    return re.sub(f"[{fractions}]|{_TIME.pattern}|{_NUMBER.pattern}", swap, text), spelled
