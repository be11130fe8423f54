"""Salesforce record Ids: 15-character case-sensitive Ids and their 18-character case-safe form.

The 18-character form appends three checksum characters, one per 5-character chunk of the
15-character Id: bit *i* of a chunk's value is set when the chunk's *i*-th character is an
upper-case letter, and the value (0..31) indexes ``A..Z0..5``. See "What is a Case Safe ID?"
(Salesforce Help, kA0300000006lyP) and the Apex ``Id.to15()`` / ``String.valueOf(id)`` docs.
"""
from __future__ import annotations

import itertools
import threading

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_CHARS = frozenset(_BASE62)


def checksum(id15: str) -> str:
    """The three case-safe suffix characters of a 15-character Id."""
    if len(id15) != 15:
        raise ValueError(f"a 15-character Id is needed, got {id15!r}")
    out = []
    for start in (0, 5, 10):
        bits = 0
        for i, ch in enumerate(id15[start:start + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX_ALPHABET[bits])
    return "".join(out)


def to18(sf_id: str) -> str:
    """The 18-character form of a 15- or 18-character Id (an 18-character Id is re-checked)."""
    if len(sf_id) == 15:
        return sf_id + checksum(sf_id)
    if len(sf_id) == 18 and is_valid(sf_id):
        return sf_id[:15] + checksum(sf_id[:15])
    raise ValueError(f"not a Salesforce Id: {sf_id!r}")


def is_valid(sf_id: object) -> bool:
    """True for a well-formed 15-character Id or an 18-character Id whose suffix matches."""
    if not isinstance(sf_id, str) or len(sf_id) not in (15, 18):
        return False
    if not set(sf_id[:15]) <= _ID_CHARS:
        return False
    if len(sf_id) == 15:
        return True
    # Salesforce accepts the suffix in any case, since it exists to survive case-folding tools.
    return sf_id[15:].upper() == checksum(sf_id[:15])


def canonical(sf_id: str) -> str:
    """The 18-character Id with the 15-character body as stored; for lookups and comparisons."""
    return to18(sf_id[:15])


def base62(n: int, width: int) -> str:
    """``n`` in base 62, left-padded with zeros to ``width`` characters."""
    digits = []
    while n:
        n, r = divmod(n, 62)
        digits.append(_BASE62[r])
    s = "".join(reversed(digits)) or "0"
    if len(s) > width:
        raise OverflowError(f"{n} does not fit in {width} base-62 digits")
    return s.rjust(width, "0")


def from_base62(text: str) -> int:
    """The integer a base-62 string stands for."""
    n = 0
    for ch in text:
        n = n * 62 + _BASE62.index(ch)
    return n


class IdFactory:
    """Hands out new 18-character Ids for a key prefix, like an org on one instance."""

    #: a fixed "instance" part so Ids look like they come from one pod (characters 4-6)
    POD = "8d0"

    def __init__(self, start: int | None = None):
        # The default start makes the sequence part mix upper- and lower-case letters from the first Id,
        # so clients that mishandle case (or drop the checksum) are caught early.
        if start is None:
            start = from_base62("Ra8G0K")
        self._counter = itertools.count(start)
        self._lock = threading.Lock()

    def new(self, key_prefix: str) -> str:
        """A fresh 18-character Id with the given 3-character key prefix."""
        if len(key_prefix) != 3:
            raise ValueError(f"a key prefix has 3 characters, got {key_prefix!r}")
        with self._lock:
            n = next(self._counter)
        return to18(key_prefix + self.POD + base62(n, 9))
