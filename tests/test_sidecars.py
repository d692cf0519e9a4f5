"""Where statistics and previews go: inside a mask folder, beside a multilabel file (the
reference tool's names), with the case id as a prefix in a batch of multilabel files."""

from __future__ import annotations

from pathlib import Path

from totalseg.run import output_targets
from totalseg.sidecars import sidecar_path


def test_sidecar_names_follow_the_reference_and_never_collide(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert sidecar_path(out, "statistics.json", file_target=False, batch=False) == (
        out / "statistics.json"
    )
    seg = tmp_path / "seg.nii.gz"
    assert sidecar_path(seg, "statistics.json", file_target=True, batch=False) == (
        tmp_path / "statistics.json"
    )
    cases = [Path("a.nii.gz"), Path("b/ct.nii.gz")]
    targets = output_targets(cases, out, multilabel=True)
    paths = [sidecar_path(t, "preview_total.png", file_target=True, batch=True) for t in targets]
    assert paths == [out / "a_preview_total.png", out / "b_preview_total.png"]
    folders = output_targets(cases, out, multilabel=False)
    paths = [sidecar_path(t, "statistics.json", file_target=False, batch=True) for t in folders]
    assert paths == [out / "a" / "statistics.json", out / "b" / "statistics.json"]
