"""Encoding room: ridge estimators, cross-validation splits and scores.

Arrays in, arrays out; never imports models, features or file formats.
"""

from mmneuro.encoding.cv import ChunkedBootstrap, LeaveRunsOut, contiguous_kfold
from mmneuro.encoding.metrics import pearson_r, r2_score
from mmneuro.encoding.ridge import RidgeCV

__all__ = ["RidgeCV", "pearson_r", "r2_score", "LeaveRunsOut", "contiguous_kfold",
           "ChunkedBootstrap"]
