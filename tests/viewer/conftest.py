"""Viewer fixtures: a small phantom case (6 mm), a tiny study, a server, headless Chromium."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from totalseg.image import Image, LabelMap
from totalseg.io import write_image, write_label_map, write_mask_folder


def _driver() -> ModuleType:
    """tests/viewer/browser.py (the DevTools driver), loaded by path (tests are no package)."""
    spec = importlib.util.spec_from_file_location(
        "viewer_browser", Path(__file__).with_name("browser.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DRIVER = _driver()


@dataclass(frozen=True)
class PhantomCase:
    ct: Path
    seg: Path  # multilabel NIfTI with the XML label table
    masks: Path  # the same labels as a folder of per-class masks
    image: Image
    label_map: LabelMap


def _phantom(seed: int) -> tuple[Image, LabelMap]:
    from totalseg.phantom import generate_subject, sample_subject_params

    phantom = generate_subject(sample_subject_params(seed, fov="abdomen", spacing_mm=6.0))
    return phantom.image, phantom.label_map("v1")


@pytest.fixture(scope="session")
def phantom_case(tmp_path_factory: pytest.TempPathFactory) -> PhantomCase:
    root = tmp_path_factory.mktemp("viewer_case")
    image, label_map = _phantom(0)
    write_image(image, root / "ct.nii.gz")
    write_label_map(label_map, root / "seg.nii.gz")
    present = {v: label_map.labels[v] for v in label_map.present_labels()}
    write_mask_folder(label_map, root / "masks", labels=present)
    return PhantomCase(root / "ct.nii.gz", root / "seg.nii.gz", root / "masks", image, label_map)


@dataclass(frozen=True)
class BoxSegmenter:
    """A stand-in model for a model-run study: one 'liver' box in the middle of every scan."""

    def __call__(self) -> Callable[[Image], LabelMap]:
        def segment(image: Image) -> LabelMap:
            labels = np.zeros(image.shape, np.uint8)
            i, j, k = (s // 2 for s in image.shape)
            labels[i - 8 : i + 8, j - 8 : j + 8, k - 8 : k + 8] = 5
            return LabelMap(labels, image.affine, {5: "liver"})

        return segment


def _write_study_inputs(root: Path) -> Path:
    """Three scans: p0 fine, p1 with a failed (tiny) liver, p2 an unreadable CT."""
    lines = ["scan_id,path,seg_path,age,sex"]
    for i, sex in enumerate(("F", "M", "F")):
        image, label_map = _phantom(i)
        labels = np.asarray(label_map.array).copy()
        if i == 1:  # keep only the top slab of the liver: below its plausible volume
            liver = np.argwhere(labels == 5)
            labels[(labels == 5) & (np.indices(labels.shape)[2] < liver[:, 2].max() - 1)] = 0
        folder = root / f"p{i}"
        write_image(image, folder / "ct.nii.gz")
        write_label_map(label_map.with_array(labels), folder / "seg.nii.gz")
        if i == 2:
            (folder / "ct.nii.gz").write_bytes(b"not a nifti file")
        lines.append(f"p{i},{folder / 'ct.nii.gz'},{folder / 'seg.nii.gz'},{40 + 10 * i},{sex}")
    manifest = root / "cohort.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture(scope="session")
def study_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_study_inputs(tmp_path_factory.mktemp("viewer_study_inputs"))


@pytest.fixture(scope="session")
def study_folder(tmp_path_factory: pytest.TempPathFactory, study_inputs: Path) -> Path:
    """A `study run --from-segmentations` folder of the three scans."""
    from totalseg.study import StudyConfig, run_study

    out = tmp_path_factory.mktemp("viewer_study") / "study"
    config = StudyConfig(from_segmentations=True, workers=0)
    run_study(study_inputs, out, config=config)
    return out


@pytest.fixture(scope="session")
def model_study_folder(tmp_path_factory: pytest.TempPathFactory, study_inputs: Path) -> Path:
    """The same scans measured by a (stand-in) model: no masks are kept."""
    from totalseg.study import StudyConfig, run_study

    out = tmp_path_factory.mktemp("viewer_model_study") / "study"
    run_study(study_inputs, out, config=StudyConfig(workers=0), segmenter_factory=BoxSegmenter())
    return out


@pytest.fixture
def serve() -> Iterator[Callable[[Any], Any]]:
    """serve(catalog) -> a running ViewerServer on 127.0.0.1 (stopped after the test)."""
    from totalseg.viewer import ViewerServer

    servers = []

    def start(catalog: Any) -> Any:
        server = ViewerServer(catalog)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium (module-wide); skips when chromium is not installed."""
    if DRIVER.CHROMIUM is None:
        pytest.skip("chromium not installed (CI installs it: apt-get install chromium)")
    pytest.importorskip("websocket", reason="websocket-client (dev extra) not installed")
    instance = DRIVER.Browser(tmp_path_factory.mktemp("chromium_profile"))
    yield instance
    instance.close()
