"""Text that every database can store."""


def storable_text(text: str) -> bool:
    """No NUL (PostgreSQL refuses it in text) and no lone surrogate (no UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
