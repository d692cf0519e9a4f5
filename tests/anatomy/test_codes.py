"""The SNOMED CT table of the structures: complete for v1 and v2, consistent with pydicom."""

from __future__ import annotations

import pytest

from totalseg.anatomy import GENERIC_CODES, class_map, structure_codes, structures


def test_every_v1_and_v2_structure_has_its_own_code():
    for version in ("v1", "v2"):
        for name in class_map(version).values():
            codes = structure_codes(name)
            assert not codes.generic, name
            assert codes.type.value.isdigit() and codes.type.scheme == "SCT"


def test_meanings_match_pydicoms_snomed_table_where_it_has_the_code():
    concepts = pytest.importorskip("pydicom.sr._concepts_dict").concepts["SCT"]
    meanings: dict[str, set[str]] = {}
    for by_code in concepts.values():
        for code, (meaning, _cids) in by_code.items():
            meanings.setdefault(code, set()).add(meaning)
    checked = 0
    for s in structures():
        codes = structure_codes(s.name)
        for code in (codes.category, codes.type, codes.modifier):
            if code is not None and code.value in meanings:
                assert code.meaning in meanings[code.value], (s.name, code)
                checked += 1
    assert checked > 200  # most codes are in pydicom's table


def test_paired_structures_carry_their_side():
    assert structure_codes("kidney_left").modifier.meaning == "Left"
    assert structure_codes("rib_right_12").modifier.meaning == "Right"
    assert structure_codes("rib_right_12").type.meaning == "Twelfth rib"
    assert structure_codes("liver").modifier is None
    assert structure_codes("kidney_cyst_left").category.meaning.startswith("Morphologically")


def test_unknown_structure_gets_the_generic_code():
    codes = structure_codes("lung_vessels")
    assert codes is GENERIC_CODES and codes.generic
    assert codes.type.value == "91723000"
    assert codes.as_dict()["generic"] is True
