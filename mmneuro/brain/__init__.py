"""Brain responses: loaders (NIfTI + mask, arrays, text ROI series), per-run cleaning,
and noise ceilings. Imports only numpy, scipy, nibabel, nilearn and h5py (never models)."""

from mmneuro.brain.ceiling import (
    ceiling_r,
    cross_subject_ceiling,
    explainable_variance,
    normalized_alignment,
)
from mmneuro.brain.loaders import load_array, load_nifti_runs, load_roi_timeseries
from mmneuro.brain.preprocess import clean_run, constant_columns, detrend, validate_responses

__all__ = [
    "load_nifti_runs",
    "load_array",
    "load_roi_timeseries",
    "detrend",
    "clean_run",
    "constant_columns",
    "validate_responses",
    "explainable_variance",
    "ceiling_r",
    "cross_subject_ceiling",
    "normalized_alignment",
]
