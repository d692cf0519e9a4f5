"""DICOM CT series input: a folder (searched recursively) or a .zip archive -> `Image` in HU.

Geometry follows the DICOM standard, converted to NIfTI conventions at this boundary only:

* slices are sorted by their position along the slice normal (the cross product of the two
  ImageOrientationPatient direction cosines), never by InstanceNumber or file name;
* the slice spacing comes from the positions (SliceThickness is ignored); in-plane spacing from
  PixelSpacing, which is (row spacing, column spacing) -- the distance between rows is the
  spacing along a column;
* voxel (i, j, k) is column i, row j of the k-th sorted slice, the same grid dicom2nifti and
  dcm2niix produce (up to axis flips); the affine maps it to RAS millimetres (DICOM is LPS).

Modality: a non-CT series is read with a logged warning rather than refused, because the
reference tool also segments MR; the intensities are then not HU.
pydicom (and pylibjpeg for compressed transfer syntaxes) is imported lazily: the extra
`totalseg[dicom]` is needed only when DICOM is actually read.
"""

from totalseg.io.dicom.series import SeriesInfo, list_series, read_dicom_series

__all__ = ["SeriesInfo", "list_series", "read_dicom_series"]
