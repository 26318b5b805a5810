"""The text rules of ``http_hooks.text``."""

import pytest

from http_hooks.text import ascii_digits


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
