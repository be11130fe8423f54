"""Seeding the sandbox org from a JSON file.

Format: an object keyed by sObject type, each a list of records::

    {
      "User":        [{"@ref": "chloe", "Username": "chloe@example.test", "FirstName": "Chloe", "LastName": "Ng"}],
      "Account":     [{"@ref": "acme", "Name": "Acme", "OwnerId": "@chloe", "BillCycleDay__c": 1}],
      "Product2":    [{"@ref": "seat", "Name": "Seat", "IsActive": true, "ProvisioningType__c": "Subscription",
                       "PricePeriod__c": "Month"}],
      "Pricebook2":  [{"@ref": "std", "Name": "Standard Price Book", "IsActive": true, "IsStandard": true}],
      "PricebookEntry": [{"@ref": "seat-std", "Pricebook2Id": "@std", "Product2Id": "@seat", "UnitPrice": 100,
                          "IsActive": true}],
      "Opportunity": [{"@ref": "opp1", "Name": "Acme new", "AccountId": "@acme", "StageName": "Prospecting",
                       "CloseDate": "2023-01-01", "SyncedQuoteId": "@q1"}],
      "Quote":       [{"@ref": "q1", "Name": "Q1", "OpportunityId": "@opp1", "Pricebook2Id": "@std"}],
      "Period":      [{"Type": "Month", "StartDate": "2023-01-01", "EndDate": "2023-01-31", "Number": 1,
                       "FullyQualifiedLabel": "January FY2023"}]
    }

Rules:

- ``"@ref": "name"`` names a record; any string value ``"@name"`` elsewhere becomes that record's
  18-character Id (``"@@text"`` is the literal ``"@text"``). ``"@integration_user"`` is the org's
  API user. A reference to an unknown name is an error that names it.
- Types are loaded parents first (User, Account, Product2, Pricebook2, PricebookEntry, Opportunity,
  Quote, QuoteLineItem, Order, OrderItem, Period, Asset, Entitlement, Subscription__c, then the rest
  in file order). A field that points at a record loaded later (e.g. ``Opportunity.SyncedQuoteId``)
  is set in a second pass, so cycles are fine.
- Seeding is the org's own data load, not API traffic: it does not count API calls, and it may set
  fields the API refuses (``CreatedDate``, ``SystemModstamp``, ``Period``, ``Pricebook2.IsStandard``,
  an ``Activated`` order), which is how history is seeded. Field names, types and references are
  still checked.
"""
from __future__ import annotations

import json
from pathlib import Path

from .org import Org

LOAD_ORDER = ("User", "Account", "Product2", "Pricebook2", "PricebookEntry", "Opportunity", "Quote",
              "QuoteLineItem", "Order", "OrderItem", "Period", "Asset", "Entitlement", "Subscription__c")


class SeedError(ValueError):
    """The seed file is malformed or refers to a record it does not define."""


def read_seed_file(path: Path) -> object:
    """The parsed JSON of a seed file; a `SeedError` saying what is wrong and where otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SeedError(f"{path}: cannot read the seed file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SeedError(f"{path}: not UTF-8 at byte {exc.start} ({exc.reason}); save it as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeedError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise SeedError(f"{path}: the JSON is nested too deeply") from None


def load_seed(org: Org, source: str | Path | dict) -> dict[str, str]:
    """Load a seed (a path to a JSON file or the parsed dict) into ``org``; returns ``{ref name: Id}``."""
    data = source if isinstance(source, dict) else read_seed_file(Path(source))
    if not isinstance(data, dict):
        raise SeedError("a seed file is a JSON object keyed by sObject type")
    declared = set()
    for type_name, rows in data.items():
        if not isinstance(rows, list):
            raise SeedError(f"{type_name}: expected a list of records")
        for n, row in enumerate(rows):
            if not isinstance(row, dict):
                raise SeedError(f"{type_name}[{n}]: expected a record (a JSON object of field values)")
            if "@ref" in row:
                if row["@ref"] in declared:
                    raise SeedError(f"{type_name}: duplicate @ref {row['@ref']!r}")
                declared.add(row["@ref"])
    refs: dict[str, str] = {"integration_user": org.user_id}
    deferred: list[tuple[str, str, dict]] = []
    ordered = [t for t in LOAD_ORDER if t in data] + [t for t in data if t not in LOAD_ORDER]
    with org.lock:
        for type_name in ordered:
            for n, row in enumerate(data[type_name]):
                values, later = {}, {}
                for key, value in row.items():
                    if key == "@ref":
                        continue
                    if isinstance(value, str) and value.startswith("@@"):
                        values[key] = value[1:]
                    elif isinstance(value, str) and value.startswith("@"):
                        name = value[1:]
                        if name in refs:
                            values[key] = refs[name]
                        elif name in declared:
                            later[key] = name
                        else:
                            raise SeedError(f"{type_name}[{n}].{key}: no record has @ref {name!r}")
                    else:
                        values[key] = value
                try:
                    rec_id = org.create(type_name, values, seed=True)
                except Exception as exc:
                    raise SeedError(f"{type_name}[{n}] ({row.get('@ref', 'unnamed')}): {exc}") from exc
                if "@ref" in row:
                    refs[row["@ref"]] = rec_id
                if later:
                    deferred.append((type_name, rec_id, later))
        for type_name, rec_id, later in deferred:
            try:
                org.update(type_name, rec_id, {k: refs[name] for k, name in later.items()}, seed=True)
            except Exception as exc:
                raise SeedError(f"{type_name} {rec_id}: {exc}") from exc
    refs.pop("integration_user")
    return refs
