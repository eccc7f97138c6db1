"""A ROI time-series study (subjects x regions, one run, an events TSV): one description + one command.

The miniature has the shape of the movie study that exposed the old recipe (many subjects,
regions, a sub-second TR, one run): each responsive region's BOLD is the canonical-HRF
response to three event types with per-region weights, plus noise. ``--model events`` must
find the responsive regions and reach the oracle; the Python route must take <= 10 lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from strict_json import read_json
from mmneuro import cli, pipeline
from mmneuro.analyses.heldout import evaluation_plan, heldout_responses
from mmneuro.encoding import pearson_r
from mmneuro.features.events import event_regressors
from mmneuro.stimuli.events import read_events
from mmneuro.results import latest_result

TR, N_TRS, N_REGIONS, N_SUBJECTS = 0.8, 600, 40, 8

DESCRIPTION = f"""\
name = "roi-movie"
tr = {TR}
first_tr_time = {TR / 2}

[[runs]]
name = "movie"
events = "events.tsv"
responses = ["sub-{{subject}}_regions.npy"]

[targets]
kind = "parcels"
names_file = "regions.txt"

[evaluation]
scheme = "contiguous-folds"
folds = 2
"""


def write_roi_study(root: Path, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Returns (responsive regions (N_REGIONS,) bool, subject -> noise-free signal (N_TRS, N_REGIONS))."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    onsets = np.sort(rng.uniform(2, N_TRS * TR - 10, 90))
    kinds = rng.choice(["face", "place", "speech"], onsets.size)
    lines = ["onset\tduration\ttrial_type"] + [f"{o:.3f}\t{rng.uniform(0.5, 3):.3f}\t{k}" for o, k in zip(onsets, kinds)]
    (root / "events.tsv").write_text("\n".join(lines) + "\n")
    (root / "regions.txt").write_text("\n".join(f"region-{j:03d}" for j in range(N_REGIONS)) + "\n")
    (root / "mmneuro.toml").write_text(DESCRIPTION)
    X, _ = event_regressors(read_events(root / "events.tsv"), (np.arange(N_TRS) + 0.5) * TR, kind="hrf")
    X = (X - X.mean(0)) / X.std(0)
    responsive = np.zeros(N_REGIONS, dtype=bool)
    responsive[rng.choice(N_REGIONS, N_REGIONS // 4, replace=False)] = True
    base_w = np.abs(rng.standard_normal((X.shape[1], N_REGIONS))) * responsive
    signals = {}
    for s in range(1, N_SUBJECTS + 1):
        w = base_w * rng.uniform(0.6, 1.4, base_w.shape)
        signal = X @ w
        signal[:, responsive] /= signal[:, responsive].std(0) / 0.6
        label = f"{s:02d}"
        signals[label] = signal
        drift = np.outer(np.linspace(-1, 1, N_TRS), rng.standard_normal(N_REGIONS))
        np.save(root / f"sub-{label}_regions.npy", (100 + signal + drift + rng.standard_normal(signal.shape))
                .astype(np.float32))
    return responsive, signals


def test_one_description_and_one_command(tmp_path, capsys):
    root = tmp_path / "study"
    responsive, signals = write_roi_study(root)
    out = tmp_path / "out"
    assert cli.main(["encode", "--dataset", str(root), "--model", "events-hrf", "--subject", "all", "--out", str(out),
                     "--no-progress", "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "best 10 of 40 ROIs shown" in printed  # one ROI per region: the table stays short
    assert printed.count("\n") < 120
    ds = pipeline.load_dataset(root)
    plan = evaluation_plan(ds)
    gaps = []
    for s in ds.subjects:
        folder = latest_result(out / "roi-movie" / f"sub-{s}", "events-hrf")
        r = np.load(folder / "r_hrf.npy")
        assert roc_auc_score(responsive, r) >= 0.9
        oracle = pearson_r(heldout_responses(ds, ds.load_responses(s)), signals[s][plan.scored])
        gaps.append(float(np.mean(r[responsive]) - np.mean(oracle[responsive])))
    print(f"\nROI study, {len(gaps)} subjects: responsive-region r - oracle r = {np.mean(gaps):+.3f} "
          f"(range {min(gaps):+.3f} to {max(gaps):+.3f})")
    assert abs(np.mean(gaps)) <= 0.05, gaps
    scores = read_json(latest_result(out / "roi-movie" / "sub-01", "events-hrf") / "scores.json")
    assert scores["ceiling"]["method"] == "loo-isc"
    group = read_json(latest_result(out / "roi-movie" / "group", "events-hrf") / "scores.json")
    assert len(group["subjects"]) == N_SUBJECTS


def test_ten_lines_of_python(tmp_path):
    root = tmp_path / "study"
    responsive, _ = write_roi_study(root, seed=1)
    # --- the README's Python route, line for line -------------------------------------------
    import numpy as np
    from mmneuro import pipeline
    from mmneuro.datasets.base import Dataset

    names = (root / "regions.txt").read_text().split()
    responses = {f"{s:02d}": np.load(root / f"sub-{s:02d}_regions.npy") for s in range(1, 9)}
    ds = Dataset.from_arrays(responses, tr=0.8, media={"events": root / "events.tsv"}, target_names=names)
    results = pipeline.encode("events", subject="all", dataset=ds, out=tmp_path / "out", progress=False,
                              cache=tmp_path / "cache")
    # -------------------------------------------------------------------------------------------
    r = np.mean([res.fits["boxcar"].r for res in results], axis=0)  # FIR model: delays 3..10 TRs (2-8 s)
    assert results[0].summary["layers"]["boxcar"]["roi_r"] and ds.delays == tuple(range(3, 11))
    assert roc_auc_score(responsive, r) >= 0.95

