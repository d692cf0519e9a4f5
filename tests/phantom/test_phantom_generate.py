"""Generated phantoms: every structure, plausible HU, left/right in world space, determinism."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from totalseg.anatomy import class_map
from totalseg.phantom import generate_subject, sample_subject_params

PAIRS = [
    ("kidney_left", "kidney_right"),
    ("hip_left", "hip_right"),
    ("autochthon_left", "autochthon_right"),
    ("iliopsoas_left", "iliopsoas_right"),
    ("adrenal_gland_left", "adrenal_gland_right"),
    ("iliac_artery_left", "iliac_artery_right"),
]


def _abdomen(seed: int = 5, **changes):
    params = sample_subject_params(seed, fov="abdomen", spacing_mm=8.0, phase="portal-venous")
    return generate_subject(params.with_(**changes))


@pytest.fixture(scope="module")
def whole_body():
    params = sample_subject_params(
        3, fov="whole-body", spacing_mm=4.0, phase="portal-venous", sex="M"
    )
    return generate_subject(params)


def _means(phantom, version="v2") -> dict[str, tuple[int, float]]:
    """(voxel count, mean HU) per class; version None: the phantom's 124 structures."""
    lm = phantom.labels if version is None else phantom.label_map(version)
    lab = np.asarray(lm.array).ravel()
    ct = np.asarray(phantom.image.array).ravel().astype(np.float64)
    counts = np.bincount(lab, minlength=256)
    sums = np.bincount(lab, weights=ct, minlength=256)
    return {name: (int(counts[i]), sums[i] / max(counts[i], 1)) for i, name in lm.labels.items()}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_class_is_present_in_a_head_to_knee_phantom(whole_body, version):
    means = _means(whole_body, version)
    assert len(means) == len(class_map(version))
    empty = [name for name, (count, _) in means.items() if count == 0]
    assert empty == []


def test_image_and_labels_are_int16_and_uint8_on_one_grid(whole_body):
    assert whole_body.image.dtype == np.int16
    assert whole_body.labels.array.dtype == np.uint8
    assert whole_body.image.same_grid(whole_body.labels)
    ct = np.asarray(whole_body.image.array)
    assert ct.min() >= -1024 and ct[0, 0, :].mean() < -900  # air in the corner


def test_tissue_attenuation_is_plausible_in_portal_venous_phase(whole_body):
    m = {k: v[1] for k, v in _means(whole_body, "v2").items()}
    assert m["liver"] > 80 and m["spleen"] > 80 and m["kidney_left"] > 100
    assert m["aorta"] > 120 and m["portal_vein_and_splenic_vein"] > 120
    assert all(m[f"lung_{x}"] < -600 for x in ("upper_lobe_left", "lower_lobe_right"))
    assert m["trachea"] < -300
    assert 20 < m["autochthon_left"] < 90 and 15 < m["brain"] < 60
    assert m["vertebrae_L3"] > 100 and m["femur_left"] > 200 and m["skull"] > 500
    assert m["urinary_bladder"] < 50 and m["gallbladder"] < 50 and m["colon"] < 0


def test_phases_order_the_aorta_attenuation():
    hu = {
        phase: _means(_abdomen(phase=phase))["aorta"][1]
        for phase in ("native", "arterial", "portal-venous")
    }
    assert hu["native"] < 80 < hu["portal-venous"] < hu["arterial"]


@pytest.mark.parametrize("code", ["RAS", "LPS", "LAS", "PIR", "ASL", "ILP"])
def test_left_is_left_in_world_space_for_every_orientation(code):
    phantom = _abdomen(orientation=code)
    assert phantom.image.orientation == tuple(code)
    lab = np.asarray(phantom.labels.array)
    ids = {name: i for i, name in phantom.labels.labels.items()}
    for left, right in PAIRS:
        centres = []
        for name in (left, right):
            ijk = np.argwhere(lab == ids[name]).mean(axis=0)
            centres.append(nib.affines.apply_affine(phantom.labels.affine, ijk))
        # RAS+ world: x grows towards the patient's right
        assert centres[0][0] < centres[1][0], (code, left)
    ras = _abdomen(orientation="RAS")
    canon = nib.as_closest_canonical(
        nib.Nifti1Image(np.asarray(phantom.image.array), phantom.image.affine)
    )
    np.testing.assert_array_equal(np.asarray(canon.dataobj), np.asarray(ras.image.array))
    np.testing.assert_allclose(canon.affine, ras.image.affine, atol=1e-6)


def test_same_params_give_identical_arrays():
    a, b = _abdomen(seed=11), _abdomen(seed=11)
    assert np.asarray(a.image.array).tobytes() == np.asarray(b.image.array).tobytes()
    assert np.asarray(a.labels.array).tobytes() == np.asarray(b.labels.array).tobytes()
    c = _abdomen(seed=12)
    assert np.asarray(a.image.array).tobytes() != np.asarray(c.image.array).tobytes()


@pytest.mark.parametrize(
    ("fov", "present", "absent"),
    [
        (
            "abdomen",
            ["liver", "spleen", "kidney_left", "pancreas", "stomach", "vertebrae_L3"],
            [
                "brain",
                "skull",
                "face",
                "thyroid_gland",
                "trachea",
                "clavicula_right",
                "vertebrae_C4",
            ],
        ),
        (
            "thorax-abdomen",
            [
                "lung_upper_lobe_left",
                "heart_ventricle_left",
                "aorta",
                "trachea",
                "liver",
                "urinary_bladder",
                "vertebrae_T1",
            ],
            ["brain", "skull", "face", "vertebrae_C2"],
        ),
    ],
)
def test_fields_of_view_contain_and_omit_the_right_structures(fov, present, absent):
    params = sample_subject_params(2, fov=fov, spacing_mm=8.0, sex="M")
    counts = {k: v[0] for k, v in _means(generate_subject(params), None).items()}
    assert all(counts[n] > 0 for n in present), [n for n in present if counts[n] == 0]
    assert all(counts[n] == 0 for n in absent), [n for n in absent if counts[n] > 0]


def test_prostate_only_in_men():
    female = generate_subject(sample_subject_params(4, fov="abdomen", spacing_mm=8.0, sex="F"))
    male = generate_subject(sample_subject_params(4, fov="abdomen", spacing_mm=8.0, sex="M"))
    assert _means(female)["prostate"][0] == 0 < _means(male)["prostate"][0]


def test_class_maps_merge_by_name(whole_body):
    v1, v2 = whole_body.label_map("v1"), whole_body.label_map("v2")
    heart_v2 = np.asarray(v2.array) == {n: i for i, n in v2.labels.items()}["heart"]
    v1_ids = {n: i for i, n in v1.labels.items()}
    chambers = np.isin(
        np.asarray(v1.array),
        [
            v1_ids[n]
            for n in (
                "heart_myocardium",
                "heart_atrium_left",
                "heart_ventricle_left",
                "heart_atrium_right",
                "heart_ventricle_right",
            )
        ],
    )
    internal = {n: i for i, n in whole_body.labels.labels.items()}
    appendage = np.asarray(whole_body.labels.array) == internal["atrial_appendage_left"]
    np.testing.assert_array_equal(heart_v2, chambers & ~appendage)
    with pytest.raises(Exception, match="v1"):
        whole_body.label_map("v3")  # type: ignore[arg-type]
