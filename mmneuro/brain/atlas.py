"""Template masks in MNI space (from the MNI152 template that ships inside nilearn; no download)."""

from __future__ import annotations

import nibabel as nib
import numpy as np


def mni152_mask(resolution_mm: int = 4) -> nib.Nifti1Image:
    """nilearn's MNI152 brain mask at ``resolution_mm`` (uint8 image, sform/qform code MNI)."""
    from nilearn.datasets import load_mni152_brain_mask

    template = load_mni152_brain_mask(resolution=resolution_mm)
    img = nib.Nifti1Image((np.asarray(template.dataobj) > 0).astype(np.uint8), template.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(template.affine, code="mni")
    img.set_qform(template.affine, code="mni")
    return img
