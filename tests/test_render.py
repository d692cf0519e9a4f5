"""The preview: radiological orientation whatever the input's axis order, a PNG with a legend."""

from __future__ import annotations

import numpy as np
import pytest

from totalseg.image import Image, LabelMap
from totalseg.preprocess.orientation import restore, to_canonical
from totalseg.render import _views, render_preview

from .conftest import affine_for


def _case(codes: str) -> tuple[Image, LabelMap]:
    """A box of HU 40 with label 5 on the patient's right, anterior and superior, stored in the
    axis order `codes` (the same world content for every order)."""
    ras = np.full((20, 24, 30), -1000, dtype=np.int16)
    ras[2:18, 2:22, 2:28] = 40
    labels = np.zeros(ras.shape, dtype=np.uint8)
    labels[14:18, 16:22, 20:28] = 5  # high i = right, high j = anterior, high k = superior
    if codes == "RAS":
        image = Image(ras, affine_for("RAS", (1.5, 1.0, 2.0)))
        return image, LabelMap(labels, image.affine, {5: "liver"})
    from nibabel.orientations import axcodes2ornt

    axes = [int(a) for a, _ in axcodes2ornt(tuple(codes))]
    spacing = [(1.5, 1.0, 2.0)[a] for a in axes]
    stored = Image(np.zeros([ras.shape[a] for a in axes], np.int16), affine_for(codes, spacing))
    canonical, record = to_canonical(stored)  # a record mapping this RAS grid back to `codes`
    image = Image(ras, canonical.affine)
    label_map = LabelMap(labels, canonical.affine, {5: "liver"})
    return restore(image, record), restore(label_map, record)


@pytest.mark.parametrize("codes", ["RAS", "LPS", "PIR"])
def test_views_are_radiological_for_any_axis_order(codes: str) -> None:
    image, labels = _case(codes)
    (_, _, coronal, _), (_, _, sagittal, _), (_, _, axial, _) = _views(image, labels)
    for view in (coronal, sagittal, axial):
        rows = np.nonzero(view == 5)[0]
        assert rows.size and rows.max() < view.shape[0] / 2  # superior / anterior at the top
    # the patient's right on the left (coronal, axial); anterior on the left (sagittal)
    assert np.nonzero(coronal == 5)[1].max() < coronal.shape[1] / 2
    assert np.nonzero(axial == 5)[1].max() < axial.shape[1] / 2
    assert np.nonzero(sagittal == 5)[1].max() < sagittal.shape[1] / 2


def test_preview_png_has_sensible_size() -> None:
    import io

    import matplotlib.image

    image, labels = _case("LPS")
    png = render_preview(image, labels, title="test")
    pixels = matplotlib.image.imread(io.BytesIO(png))
    assert 300 <= pixels.shape[0] <= 2000 and 500 <= pixels.shape[1] <= 3000
    with pytest.raises(Exception, match="grid"):
        render_preview(image, LabelMap(np.zeros((3, 3, 3), np.uint8), np.eye(4)))
