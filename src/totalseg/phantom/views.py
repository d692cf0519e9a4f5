"""Pictures of a CT with a label overlay: axial, coronal and sagittal slices (matplotlib, Agg).

Display convention: radiological. Axial and coronal views show the patient's right on the
left of the picture; axial views have anterior up; coronal and sagittal views have superior up.
Arrays are first brought to RAS so that the same code serves every stored orientation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from totalseg.image import Image, LabelMap

__all__ = ["render_views"]


def _to_ras(volume: Image | LabelMap) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(volume.array), volume.affine)
    ras = nib.as_closest_canonical(img)
    return np.asarray(ras.dataobj), ras.affine


def _colors(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    cols = rng.uniform(0.15, 1.0, size=(n + 1, 4))
    cols[:, 3] = 0.45
    cols[0] = 0.0
    return cols


def _slice(arr: np.ndarray, plane: str, index: int) -> np.ndarray:
    """2D picture with rows top->bottom, columns left->right in radiological convention."""
    if plane == "axial":
        s = arr[:, :, index]  # RAS: i grows towards the patient's right, j anterior
        return s[::-1, ::-1].T  # rows: anterior first; columns: patient right first
    if plane == "coronal":
        s = arr[:, index, :]
        return s[::-1, ::-1].T  # rows: superior first; columns: patient right first
    s = arr[index, :, :]
    return s[:, ::-1].T  # rows: superior first; columns: posterior ... anterior


def render_views(
    image: Image,
    labels: LabelMap,
    out_dir: str | Path,
    *,
    prefix: str,
    positions: Sequence[tuple[str, float]] | None = None,
    window_hu: tuple[float, float] = (-400.0, 600.0),
) -> list[Path]:
    """Write PNGs of slices at fractional positions (plane, 0..1) with the label overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ct, affine = _to_ras(image)
    lab, _ = _to_ras(labels)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if positions is None:
        positions = [("coronal", 0.55), ("sagittal", 0.5), ("axial", 0.5)]
    colors = _colors(int(max(lab.max(), 1)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for plane, frac in positions:
        axis = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
        index = round(frac * (ct.shape[axis] - 1))
        img2d, lab2d = _slice(ct, plane, index), _slice(lab, plane, index)
        sx, sy = {
            "axial": (spacing[0], spacing[1]),
            "coronal": (spacing[0], spacing[2]),
            "sagittal": (spacing[1], spacing[2]),
        }[plane]
        extent = (0, img2d.shape[1] * sx, 0, img2d.shape[0] * sy)
        fig, axes = plt.subplots(
            1, 2, figsize=(10, 10 * img2d.shape[0] * sy / max(img2d.shape[1] * sx, 1) / 2 + 0.8)
        )
        for ax, overlay in zip(axes, (False, True), strict=False):
            ax.imshow(
                img2d,
                cmap="gray",
                vmin=window_hu[0],
                vmax=window_hu[1],
                extent=extent,
                interpolation="nearest",
            )
            if overlay:
                ax.imshow(colors[lab2d.astype(int)], extent=extent, interpolation="nearest")
            ax.set_xlabel(
                {
                    "axial": "patient right  <-  x (mm)  ->  patient left",
                    "coronal": "patient right  <-  x (mm)  ->  patient left",
                    "sagittal": "posterior  <-  y (mm)  ->  anterior",
                }[plane]
            )
            ax.set_ylabel("anterior ^ (mm)" if plane == "axial" else "superior ^ (mm)")
        fig.suptitle(f"{prefix}: {plane} slice {index} ({frac:.2f})")
        fig.tight_layout()
        path = out_dir / f"{prefix}_{plane}_{round(frac * 100):02d}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written
