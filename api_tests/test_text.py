"""The text rules of ``http_hooks.text``."""

import re

import pytest

from http_hooks.text import LABEL_PATTERN, ascii_digits, label_problem


@pytest.mark.parametrize(
    ("text", "unsigned", "signed"),
    [
        pytest.param("0", True, True, id="zero"),
        pytest.param("42", True, True, id="digits"),
        pytest.param("007", True, True, id="leading-zeros"),
        pytest.param("-3", False, True, id="minus"),
        pytest.param("", False, False, id="empty"),
        pytest.param("-", False, False, id="minus-alone"),
        pytest.param("--3", False, False, id="two-minus"),
        pytest.param("+1", False, False, id="plus"),
        pytest.param(" 1", False, False, id="leading-space"),
        pytest.param("1 ", False, False, id="trailing-space"),
        pytest.param("1\n", False, False, id="trailing-newline"),
        pytest.param("1_0", False, False, id="underscore"),
        pytest.param("1.0", False, False, id="decimal-point"),
        pytest.param("\u0661", False, False, id="arabic-indic-digit"),
        pytest.param("-\u0661", False, False, id="minus-arabic-indic-digit"),
        pytest.param("\u00b2", False, False, id="superscript-two"),
        pytest.param("\uff11", False, False, id="fullwidth-digit"),
    ],
)
def test_ascii_digits(text, unsigned, signed):
    assert ascii_digits(text) is unsigned
    assert ascii_digits(text, signed=True) is signed


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("orders \u2192 Slack", id="arrow"),
        pytest.param("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", id="persian-zwnj"),
        pytest.param("\U0001f469\u200d\U0001f4bb", id="emoji-zwj"),
        pytest.param("a\u00a0b", id="no-break-space"),
        pytest.param("", id="empty"),
    ],
)
def test_label_problem_takes_text_of_any_script(text):
    assert label_problem(text) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("a\nb", "U+000A:", id="line-feed"),
        pytest.param("a\x1b[2J", "U+001B:", id="escape"),
        pytest.param("a\x9b", "U+009B:", id="c1"),
        pytest.param("a\u202eb", "U+202E RIGHT-TO-LEFT OVERRIDE:", id="bidi-override"),
        pytest.param("a\u200bb", "U+200B ZERO WIDTH SPACE:", id="zero-width-space"),
        pytest.param("a\u2029b", "U+2029 PARAGRAPH SEPARATOR:", id="paragraph-separator"),
    ],
)
def test_label_problem_names_the_first_hidden_character(text, words):
    assert words in label_problem(text)


def test_the_schemas_label_pattern_refuses_nothing_the_server_takes():
    """The pattern lists a few of the characters: a client that checks it must never
    refuse a name the API would take."""
    pattern = re.compile(LABEL_PATTERN)
    refused = [chr(code) for code in range(0x10000) if not pattern.match(f"a{chr(code)}b")]
    assert refused and all(label_problem(char) for char in refused)
