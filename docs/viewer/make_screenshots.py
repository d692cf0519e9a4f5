"""Regenerate the viewer screenshots in this folder (needs chromium; a few minutes on 2 cores).

    PYTHONPATH=src python docs/viewer/make_screenshots.py

case_viewer.png: a 3 mm phantom and its 104-class labels, three planes + 3D, the mouse over a
structure. study_table.png: a 10-scan phantom study (`study run --from-segmentations`) with a
failed scan and two failed segmentations (a liver and a spleen cut down to fragments).
"""

from __future__ import annotations

import importlib.util
import io
import tempfile
import threading
from pathlib import Path

import numpy as np

from totalseg.io import write_image, write_label_map
from totalseg.phantom import generate_subject, sample_subject_params
from totalseg.study import StudyConfig, run_study
from totalseg.viewer import ViewerServer, open_case, open_study

HERE = Path(__file__).resolve().parent
DRIVER_PATH = HERE.parents[1] / "tests" / "viewer" / "browser.py"
READY = "document.body && ['ready', 'error'].includes(document.body.dataset.state)"


def _driver():
    spec = importlib.util.spec_from_file_location("viewer_browser", DRIVER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save(png_rgb: np.ndarray, name: str) -> None:
    """A 256-colour PNG (small enough for the repository)."""
    from PIL import Image

    image = Image.fromarray(png_rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    (HERE / name).write_bytes(buffer.getvalue())
    print(f"{name}: {len(buffer.getvalue()) // 1024} KB")


def _study_inputs(root: Path) -> Path:
    lines = ["scan_id,path,seg_path,age,sex"]
    for i in range(10):
        params = sample_subject_params(i, fov="abdomen", spacing_mm=6.0)
        phantom = generate_subject(params)
        label_map = phantom.label_map("v1")
        labels = np.asarray(label_map.array).copy()
        for shrink, label in ((4, 5), (7, 1)):  # a failed liver (p4), a failed spleen (p7)
            if i == shrink:
                top = np.argwhere(labels == label)[:, 2].max()
                labels[(labels == label) & (np.indices(labels.shape)[2] < top - 1)] = 0
        folder = root / f"p{i}"
        write_image(phantom.image, folder / "ct.nii.gz")
        write_label_map(label_map.with_array(labels), folder / "seg.nii.gz")
        if i == 2:
            (folder / "ct.nii.gz").write_bytes(b"truncated")
        sex = "F" if params.sex.upper().startswith("F") else "M"
        seg = folder / "seg.nii.gz"
        lines.append(f"p{i},{folder / 'ct.nii.gz'},{seg},{round(params.age_years)},{sex}")
    (root / "cohort.csv").write_text("\n".join(lines) + "\n")
    return root / "cohort.csv"


def _serve(catalog) -> ViewerServer:
    server = ViewerServer(catalog)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def main() -> None:
    driver = _driver()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        phantom = generate_subject(sample_subject_params(3, fov="abdomen", spacing_mm=3.0))
        write_image(phantom.image, root / "ct.nii.gz")
        write_label_map(phantom.label_map("v1"), root / "seg.nii.gz")
        run_study(
            _study_inputs(root / "cohort"),
            root / "phantom_study",
            config=StudyConfig(from_segmentations=True, workers=0),
        )
        browser = driver.Browser(root / "profile")
        try:
            case = _serve(open_case(root / "ct.nii.gz", root / "seg.nii.gz"))
            page = browser.new_page()
            page.set_size(1400, 800)
            page.goto(case.url)
            page.wait_for(READY, timeout_s=300)
            page.evaluate("document.querySelector('tr[data-name=liver] button').click()")
            x, y = page.evaluate(
                "(() => { const nv = totalsegViewer.nv; const s = totalsegViewer.info.structures"
                ".find(s => s.name === 'liver'); const r = document.getElementById('gl')"
                ".getBoundingClientRect(); const p = nv.frac2canvasPosWithTile("
                "nv.mm2frac(s.centroid_mm), 0).pos;"
                " return [r.x + p[0] / nv.uiData.dpr, r.y + p[1] / nv.uiData.dpr]; })()"
            )
            page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
            page.wait_for("!document.getElementById('hover').hidden")
            _save(page.screenshot(), "case_viewer.png")
            page.close()

            study = _serve(open_study(root / "phantom_study"))
            page = browser.new_page()
            page.set_size(1200, 420)
            page.goto(study.url)
            page.wait_for(READY, timeout_s=60)
            _save(page.screenshot(), "study_table.png")
            page.close()
        finally:
            browser.close()


if __name__ == "__main__":
    main()
