"""Body-aware tile skipping end to end: labels inside the body identical to a run without
skipping (LPS, PIR, oblique inputs; tasks and a bare model folder), fewer tiles when the body is
a small part of the field of view, background outside, and the option's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from totalseg.cli.app import main
from totalseg.errors import ConfigError
from totalseg.image import Image
from totalseg.pipeline import Segmenter, SegmentOptions


def small_body(shape, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CT whose body (a blobby ellipsoid, 40 HU with denser inserts) fills a corner of a wide
    field of air; returns the int16 volume and the true body mask."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    center = np.array([-0.55, 0.5, 0.1])[:, None, None, None]
    radii = np.array([0.25, 0.3, 0.4])[:, None, None, None]
    body = (((grid - center) / radii) ** 2).sum(0) < 1
    ct = np.where(body, 40.0, -1000.0)
    for _ in range(4):
        c = center[:, 0, 0, 0] + rng.uniform(-0.15, 0.15, size=3)
        blob = ((grid - c[:, None, None, None]) ** 2).sum(0) < 0.12**2
        ct[blob & body] = rng.choice([300.0, 900.0, -80.0])
    ct += rng.normal(0, 15, size=shape)
    return ct.astype(np.int16), body


def _tiles_total(events) -> int:
    """Forward passes over every part: the last tile count reported per part."""
    last: dict[int, int] = {}
    for e in events:
        last[e.part] = e.tiles_total
    return sum(last.values())


def _run(task_or_dir, image, *, home: Path, **fields):
    events: list = []
    key = {"model_dir": task_or_dir} if isinstance(task_or_dir, Path) else {"task": task_or_dir}
    seg = Segmenter(
        options=SegmentOptions(home=home, device="cpu", **key, **fields), progress=events.append
    )
    labels, times = seg.run(image)
    return np.asarray(labels.array), _tiles_total(events), times


@pytest.mark.parametrize(
    ("task", "codes", "spacing", "shape"),
    [("total-fast", "LPS", (4.0, 4.2, 3.8), (70, 60, 50)),
     ("total-fast", "PIR", (4.4, 3.9, 4.1), (52, 64, 60)),
     ("total-fast", "oblique", (4.0, 4.0, 4.0), (64, 56, 48)),
     pytest.param("total", "LPS", (2.2, 2.0, 2.4), (44, 40, 34), marks=pytest.mark.slow)],
)  # fmt: skip
def test_labels_inside_the_body_equal_a_run_without_skipping(
    task, codes, spacing, shape, weights_home, affine_of
):
    ct, body = small_body(shape, seed=len(codes))
    image = Image(ct, affine_of(codes, spacing))
    full, n_full, _ = _run(task, image, home=weights_home, body_skip=False)
    skipped, n_skipped, times = _run(task, image, home=weights_home)  # on by default for tasks
    assert np.array_equal(full[body], skipped[body])
    assert len(np.unique(skipped[body])) > 3  # random weights label the body with many classes
    assert n_skipped < n_full
    assert sum(p.n_tiles_run for p in times.parts) == n_skipped
    assert sum(p.n_tiles_run + p.n_tiles_skipped for p in times.parts) == n_full
    assert (skipped[~body] == 0).mean() > (full[~body] == 0).mean()  # background outside
    assert times.body_s > 0 and times.network_s > 0


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    from totalseg.models.writer import random_model_folder

    return random_model_folder(
        tmp_path_factory.mktemp("body_skip") / "Dataset905_Skip" / "nnUNetTrainer__3d_fullres",
        n_classes=3, patch_size=(16, 16, 16), spacing_mm=(2.5, 2.0, 2.2), seed=5,
        features_per_stage=(4, 8), strides=((1, 1, 1), (2, 2, 2)), kernel_sizes=((3, 3, 3),) * 2,
    )  # fmt: skip


def test_model_folder_skips_only_when_asked_and_keeps_the_body(model_folder, affine_of, tmp_path):
    ct, body = small_body((60, 52, 44), seed=3)
    image = Image(ct, affine_of("PIR", (2.6, 3.1, 2.9)))
    default, n_default, _ = _run(model_folder, image, home=tmp_path)
    skipped, n_skipped, _ = _run(model_folder, image, home=tmp_path, body_skip=True)
    assert n_skipped < n_default  # off by default for a bare model folder
    assert np.array_equal(default[body], skipped[body])  # also through nnU-Net's resampling back


def test_parity_never_skips(weights_home, affine_of):
    ct, _ = small_body((60, 50, 40))
    image = Image(ct, affine_of("LPS", (4.0, 4.0, 4.0)))
    _, n_parity, _ = _run("total-fast", image, home=weights_home, parity=True)
    _, n_full, _ = _run("total-fast", image, home=weights_home, body_skip=False)
    assert n_parity == n_full
    with pytest.raises(ConfigError, match="body_skip=True"):
        SegmentOptions(parity=True, body_skip=True)
    assert not SegmentOptions(parity=True).skips_outside_body
    assert SegmentOptions().skips_outside_body
    assert not SegmentOptions(model_dir=Path("m")).skips_outside_body
    assert SegmentOptions(model_dir=Path("m"), body_skip=True).skips_outside_body


def test_cli_no_body_skip_flag(weights_home, affine_of, tmp_path, monkeypatch):
    monkeypatch.setenv("TOTALSEG_HOME", str(weights_home))
    ct, body = small_body((60, 50, 40))
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(ct, affine_of("LPS", (4.0, 4.0, 4.0))), path)
    outs = {}
    for flag in ("--body-skip", "--no-body-skip"):
        out = tmp_path / f"{flag}.nii.gz"
        args = ["segment", "-i", str(path), "-o", str(out), "--task", "total-fast", "--ml"]
        assert main([*args, "--device", "cpu", flag]) == 0
        outs[flag] = np.asarray(nib.load(out).dataobj)
    assert np.array_equal(outs["--body-skip"][body], outs["--no-body-skip"][body])
    assert not np.array_equal(outs["--body-skip"], outs["--no-body-skip"])
    assert main(["segment", "-i", str(path), "-o", str(tmp_path / "x.nii.gz"), "--parity",
                 "--body-skip", "--ml"]) == 1  # fmt: skip
    json.dumps(SegmentOptions(body_skip=False).body_skip)
