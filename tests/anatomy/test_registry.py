from __future__ import annotations

import numpy as np
import pytest

from totalseg.anatomy import (
    class_map,
    get_structure,
    group_counts,
    part_maps,
    relabel,
    resolve_names,
    structures,
    subset,
)
from totalseg.errors import UnknownStructureError


def test_v1_has_104_classes_in_paper_groups():
    assert len(class_map("v1")) == 104
    assert group_counts("v1") == {"organ": 27, "bone": 59, "muscle": 10, "vessel": 8}


def test_v2_has_117_contiguous_classes():
    cmap = class_map("v2")
    assert list(cmap) == list(range(1, 118))
    assert cmap[5] == "liver" and cmap[26] == "vertebrae_S1" and cmap[117] == "costal_cartilages"


def test_v1_parts_match_the_paper_split():
    parts = part_maps("v1")
    assert {k: len(v) for k, v in parts.items()} == {251: 17, 252: 24, 253: 18, 254: 21, 255: 24}
    assert parts[253][17] == "urinary_bladder" and parts[253][18] == "face"


def test_v2_parts_are_global_id_minus_offset():
    offsets = {291: 0, 292: 24, 293: 50, 294: 68, 295: 91}
    cmap = class_map("v2")
    for ds, labels in part_maps("v2").items():
        for local, name in labels.items():
            assert cmap[local + offsets[ds]] == name


def test_union_and_names_unique():
    names = [s.name for s in structures()]
    assert len(names) == len(set(names)) == 124


def test_relabel_v1_to_v2_by_name():
    v1 = np.array([[[0, 7, 10, 44, 104]]], np.uint8)  # aorta, pancreas, myocardium, bladder
    v2 = relabel(v1, class_map("v1"), class_map("v2"))
    np.testing.assert_array_equal(v2, [[[0, 52, 7, 0, 21]]])


def test_relabel_round_trip_on_shared_classes():
    v2 = np.arange(0, 118, dtype=np.uint8).reshape(1, 1, -1)
    there = relabel(v2, class_map("v2"), class_map("v1"))
    back = relabel(there, class_map("v1"), class_map("v2"))
    shared = there > 0
    np.testing.assert_array_equal(back[shared], v2[shared])


def test_unknown_name_suggests():
    with pytest.raises(
        UnknownStructureError, match=r"Unknown structure 'kidney_lft'.*'kidney_left'"
    ):
        get_structure("kidney_lft")


def test_unknown_name_without_close_match():
    with pytest.raises(UnknownStructureError, match=r"Unknown structure 'qqq'\. List the names"):
        get_structure("qqq")


def test_name_not_in_requested_version():
    with pytest.raises(UnknownStructureError, match="not in the v1 class map"):
        resolve_names(["thyroid_gland"], version="v1")


def test_unknown_version():
    with pytest.raises(UnknownStructureError, match="Expected class map version"):
        class_map("v3")  # type: ignore[arg-type]


def test_subsets_expand_and_dedupe():
    names = resolve_names(["liver", "btcv13"])
    assert names[0] == "liver" and len(names) == 13
    assert len(subset("btcv13")) == 13
    with pytest.raises(UnknownStructureError, match="Did you mean 'btcv13'"):
        subset("btcv")
