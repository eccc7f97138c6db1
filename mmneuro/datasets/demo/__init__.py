"""The embedded demo dataset: a synthetic audiovisual "movie" and simulated BOLD with known truth.

:func:`generate_demo` writes a small study that looks like a real one (MP4 + WAV + word
TSV per stimulus run, BIDS-like 4D NIfTI per acquisition for three subjects, a brain mask in
MNI space) together with the ground truth it was built from; :func:`load_demo` reads it back
as a :class:`~mmneuro.datasets.base.Dataset`.

The generative model
--------------------
1. **Stimulus.** Each stimulus run is ``n_trs * TR`` seconds of 128x128 video at 10 fps and
   16 kHz mono audio. Coloured circles and squares appear, move and vanish over flat
   backgrounds that change at scene cuts (scenes of 4-12 s). The run alternates between
   audiovisually *congruent* blocks (each object sounds a tone whose pitch is fixed by its
   colour, starting and stopping with the object, amplitude-modulated while it moves; scene
   cuts sound a noise burst) and *incongruent* blocks (tones, noise bursts and
   amplitude-modulated sounds at random times and pitches, unrelated to the picture), blocks
   of 20-40 s in congruent/incongruent pairs whose second block replays the first block's
   scenes in reverse order, so the picture is balanced across conditions. A narration
   describes the picture ("a red circle appears", "it moves left", "the scene changes");
   each word is rendered as a harmonic burst with formant-shaped spectrum (speech-like, no TTS).
2. **Descriptors** are measured on the rendered media at the frame rate (frame centres
   ``(k + 0.5) / fps``): luminance, motion energy, colour saturation, audio RMS envelope,
   spectral centroid, word rate and audiovisual congruence.
3. **Regressors** = descriptors convolved with the SPM canonical double-gamma HRF, sampled at
   the run's ``tr_times = (i + 0.5) * TR`` and standardised with dataset-wide constants.
4. **BOLD** of voxel ``v`` in ROI ``r`` = baseline (1000) + quadratic drift + AR(1) noise
   (rho 0.4, sd 10) + ``regressors @ w_v`` with positive per-subject weights on the
   descriptors that drive ``r``, scaled so that mean signal variance / noise variance = 0.5
   over the ROI voxels. Voxels outside the ROIs carry no signal. The noise is independent per
   subject and per acquisition; both presentations of the test run share the signal.
"""

from __future__ import annotations

from mmneuro.datasets.demo.spec import (  # noqa: F401
    ACQUISITIONS,
    AR_RHO,
    BASELINE,
    COLOURS,
    DELAYS,
    DESCRIPTORS,
    DIRECTIONS,
    DRIFT_SD,
    FPS,
    GENERATOR_VERSION,
    GZIP_LEVEL,
    NOISE_SD,
    ROIS,
    ROI_RADIUS_MM,
    RUNS,
    RunSpec,
    SAMPLE_RATE,
    SCL_SLOPE,
    SHAPES,
    SIZE,
    SNR,
    SUBJECTS,
    TR,
    WEIGHT_JITTER,
)
from mmneuro.datasets.demo.timeline import (  # noqa: F401
    MovingObject,
    Sound,
    Timeline,
    make_timeline,
)
from mmneuro.datasets.demo.render import (  # noqa: F401
    frame_times,
    render_frames,
    synthesize_audio,
)
from mmneuro.datasets.demo.descriptors import (  # noqa: F401
    canonical_hrf,
    compute_descriptors,
    hrf_regressors,
)
from mmneuro.datasets.demo.media import (  # noqa: F401
    write_mp4,
    write_wav,
    write_words_tsv,
)
from mmneuro.datasets.demo.bold import (  # noqa: F401
    bold_image,
    roi_labels,
    simulate_acquisition,
    subject_weights,
)
from mmneuro.datasets.demo.generate import (  # noqa: F401
    RenderedRun,
    build_run,
    generate_demo,
)
from mmneuro.datasets.demo.load import (  # noqa: F401
    ground_truth_regressors,
    load_demo,
)
