import pytest

from http_hooks.exceptions import InvalidHeadersError
from http_hooks.headers import format_headers, parse_header_names, parse_headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("test-token: 12345", {"test-token": "12345"}),
        ("A: 1\r\nB: 2", {"A": "1", "B": "2"}),
        ("A: 1\nB: 2\n\n", {"A": "1", "B": "2"}),
        ("Link: http://example.com:8080/x", {"Link": "http://example.com:8080/x"}),
        ('{"test-token": "12345"}', {"test-token": "12345"}),
        ({"X-Count": 3}, {"X-Count": "3"}),
        ("", {}),
        (None, {}),
        ({}, {}),
    ],
    ids=[
        "one-line",
        "crlf",
        "lf-trailing-blank",
        "colon-in-value",
        "json",
        "mapping",
        "empty",
        "none",
        "empty-mapping",
    ],
)
def test_valid_headers_are_normalised(value, expected):
    assert parse_headers(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "token 1234",
        ": no-name",
        "bad name: x",
        "A: 1\nnot a header",
        {"A": "line\r\nbreak"},
        {"A": "x\nInjected: 1"},
        {"": "x"},
        {"A": None},
        {"A": True},
        {"A": "emoji ✓"},
        '{"A": ',
        "[1, 2]",
        '["A"]',
        42,
        {"A": 10**5000},
        {"X-A": "1", "x-a": "2"},
        "X-A: 1\nX-A: 2",
        "X-A: 1\nx-a: 2",
        '{"X-A": "1", "X-A": "2"}',
        '{"X-A": "1", "x-A": "2"}',
    ],
    ids=[
        "no-colon",
        "empty-name",
        "space-in-name",
        "second-line-malformed",
        "crlf-in-value",
        "lf-in-value",
        "empty-name-mapping",
        "null-value",
        "bool-value",
        "not-latin-1",
        "broken-json",
        "json-array-text",
        "json-array",
        "not-text",
        "int-past-the-digit-limit",
        "name-twice-in-another-case",
        "line-twice",
        "line-twice-in-another-case",
        "json-member-twice",
        "json-member-twice-in-another-case",
    ],
)
def test_invalid_headers_raise(value):
    with pytest.raises(InvalidHeadersError, match="invalid headers"):
        parse_headers(value)


@pytest.mark.parametrize("name", [1, None, b"X"], ids=repr)
def test_a_name_that_is_no_text_says_so(name):
    """It was called empty."""
    with pytest.raises(InvalidHeadersError, match="a header name must be text, not "):
        parse_headers({name: "x"})


def test_a_name_given_twice_says_which():
    with pytest.raises(InvalidHeadersError, match=r"'x-a' is given twice \(as 'X-A': names ignore"):
        parse_headers({"X-A": "1", "x-a": "2"})
    with pytest.raises(InvalidHeadersError, match=r"'X-A' is given twice$"):
        parse_headers("X-A: 1\nX-A: 2")


def test_stored_headers_keep_the_last_of_a_name_given_twice():
    """Hooks stored before names given twice were refused send the last of them once,
    as the old package's requests did, instead of failing every try."""
    assert parse_headers({"X-A": "1", "B": "b", "x-a": "2"}, stored=True) == {"B": "b", "x-a": "2"}


def test_format_headers_round_trips_through_parse():
    headers = {"A": "1", "Link": "http://x:1/y"}
    assert parse_headers(format_headers(headers)) == headers


@pytest.mark.parametrize(
    "text",
    ["X-Api-Key, X-Other", "X-Api-Key,X-Other,", " X-Api-Key\nX-Other ", ",X-Api-Key,,X-Other"],
)
def test_secret_header_names_in_text_ignore_empty_entries(text):
    """As the admin's other comma lists do: a trailing comma names no header."""
    assert parse_header_names(text) == ["x-api-key", "x-other"]


@pytest.mark.parametrize("names", [[""], ["X-Api-Key", ""], "X-Api-Key, x y:"])
def test_an_empty_or_invalid_secret_header_name_is_refused(names):
    with pytest.raises(InvalidHeadersError, match="not a valid header name"):
        parse_header_names(names)
