"""Salesforce Ids: the 18-character form's case checksum, and an org id's canonical 15 characters."""
from __future__ import annotations

import re

ID_PATTERN = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id_suffix(id15: str) -> str:
    """The 3-character case-encoding suffix that turns a 15-character Salesforce Id into 18."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        suffix += _SUFFIX_ALPHABET[bits]
    return suffix


def org_key(org_id: str) -> str:
    """The case-sensitive 15-character form of an org id given as 15 or 18 characters.

    The first 15 characters are the Id and are case-sensitive; the 18-character form only adds a
    checksum of their case, so two ids are the same org exactly when their first 15 match.
    """
    value = org_id.strip()
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(f"{org_id!r} is not a 15- or 18-character Salesforce Id")
    if len(value) == 18 and value[15:].upper() != id_suffix(value[:15]):
        raise ValueError(f"{org_id!r} has a wrong checksum (its last 3 characters); "
                         "copy it again from Setup → Company Information")
    return value[:15]


_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def salesforce_id_18(value: str) -> str | None:
    """The 18-character form of a Salesforce Id (15 or 18 characters), or None for anything else.

    The 15-character form is case-sensitive; the 3 characters added encode which characters of each
    group of 5 are capitals, as the CASESAFEID() formula function does
    (https://gammone.com/en/programming/how-to-convert-salesforce-id-from-15-to-18-chars: a0D30000001n7Pi
    is a0D30000001n7PiEAI). The API returns 18 characters, but a text field filled in by hand may
    hold the 15 of a Classic URL or a report.
    """
    if not isinstance(value, str) or not _ID.fullmatch(value):
        return None
    if len(value) == 18:
        return value
    suffix = ""
    for chunk in (value[0:5], value[5:10], value[10:15]):
        bits = sum(1 << n for n, ch in enumerate(chunk) if ch.isupper())
        suffix += _ID_CHARS[bits]
    return value + suffix
