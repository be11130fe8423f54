"""18-character Ids: the case-safe checksum and the Id factory."""
from __future__ import annotations

import pytest

from connector.sandbox import ids
from connector.sandbox.schema import load_schema


@pytest.mark.parametrize(
    "id15, id18",
    [
        # Real Ids from the recorded samples (query-parent-child-subquery.json, collections-upsert-created-mixed.json).
        ("0037e00001WZ30q", "0037e00001WZ30qAAD"),
        ("0067e00000K8i71", "0067e00000K8i71AAB"),
        ("7508d00000Ihhl5", "7508d00000Ihhl5AAB"),
        ("0058d000006mtd1", "0058d000006mtd1AAA"),
        ("750Tn000004ZoR3", "750Tn000004ZoR3IAK"),
        ("00D0xORGID00000", "00D0xORGID00000000"[:15] + ids.checksum("00D0xORGID00000")),
    ],
    ids=["contact", "opportunity", "bulk-job", "user", "bulk-job-mixed-case", "org"],
)
def test_checksum_matches_real_ids(id15, id18):
    assert ids.to18(id15) == id18
    assert ids.is_valid(id18)


def test_all_upper_chunk_maps_to_digit():
    assert ids.checksum("AAAAAAAAAAAAAAA") == "555"  # 0b11111 = 31 -> '5'
    assert ids.checksum("aaaaaaaaaaaaaaa") == "AAA"


@pytest.mark.parametrize("bad", ["0037e00001WZ30qAAA", "0037e00001WZ30", "0037e00001WZ30q!!!", None, 123],
                         ids=["wrong-suffix", "too-short", "bad-chars", "none", "int"])
def test_invalid_ids_are_rejected(bad):
    assert not ids.is_valid(bad)


def test_suffix_is_case_insensitive_and_canonical_fixes_it():
    assert ids.is_valid("0037e00001WZ30qaad")
    assert ids.canonical("0037e00001WZ30qaad") == "0037e00001WZ30qAAD"


def test_factory_ids_have_prefix_valid_checksum_and_mixed_case():
    factory = ids.IdFactory()
    made = [factory.new("801") for _ in range(100)]
    assert len(set(made)) == 100
    assert all(len(i) == 18 and i.startswith("801") and ids.is_valid(i) for i in made)
    assert any(i[15:] != "AAA" for i in made), "the sequence should exercise the checksum"


def test_custom_objects_get_generated_prefixes_and_big_objects_none():
    schema = load_schema()
    assert schema.get("Subscription__c").key_prefix == "a01"
    assert schema.get("ArrByPeriod__b").key_prefix is None
    prefixes = {o.name: o.key_prefix for o in schema.objects.values()}
    assert prefixes["Order"] == "801" and prefixes["OrderItem"] == "802" and prefixes["Entitlement"] == "550"
