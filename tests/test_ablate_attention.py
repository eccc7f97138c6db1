"""``mmneuro ablate attention`` through its own parser, on a shortened demo with a tiny random TVLT:
the result folder, the numbers in it against an independent re-fit from the cache, and the cache keys."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest

from strict_json import read_json
from mmneuro import pipeline
from mmneuro.ablate import attention as face
from mmneuro.analyses.heldout import fit_evaluate
from mmneuro.datasets.base import Responses
from mmneuro.models.tvlt import tiny_config
from mmneuro.results import latest_result

N_TRS = 40  # TRs kept per run: 4 x 40 training, 40 test (x 2 repeats)


@pytest.fixture(scope="module")
def short_demo(demo):
    runs = [dataclasses.replace(r, tr_times=r.tr_times[:N_TRS]) for r in demo.runs]

    def load(subject: str) -> Responses:
        full = demo.load_responses(subject)
        return Responses(full.subject, {k: v[:, :N_TRS] for k, v in full.runs.items()}, full.valid)

    return dataclasses.replace(demo, runs=runs, load_responses=load)


def test_cli_face_writes_the_study_and_its_numbers_hold(short_demo, tmp_path, capsys):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(tiny_config(num_hidden_layers=3)))
    cache = tmp_path / "cache"
    parser = argparse.ArgumentParser()
    face.add_arguments(parser)
    args = parser.parse_args(["--dataset", "demo", "--subject", "1", "--model", "tvlt", "--weights", "random",
                              "--model-config", str(cfg), "--targets", "rois", "--max-windows", "6",
                              "--n-boot", "200", "--cache", str(cache), "--out", str(tmp_path / "results"),
                              "--no-progress"])
    args.dataset = short_demo  # the parsed name, swapped for the shortened demo to keep the test fast
    folder = face.run(args)
    printed = capsys.readouterr().out
    assert folder == latest_result(tmp_path / "results" / "demo" / "sub-01" / "ablate-attention", "tvlt_random-weights")
    assert "[RANDOM WEIGHTS]" in printed and "multisensory-visual" in printed
    for name in ["results.json", "arrays.npz", "provenance.json", "figure.png"] + \
            [f"{kind}_layer-{i}.nii.gz" for kind in ("r_full", "r_blocked", "drop") for i in (1, 2, 3)]:
        assert (folder / name).is_file(), name
    res = read_json(folder / "results.json")
    assert res["random_weights"] is True and res["layers"] == ["layer-1", "layer-2", "layer-3"]
    assert res["attention"]["n_windows"] == 6 * len(short_demo.runs)
    for layer in res["layers"]:
        sh = res["attention"]["shares_head_mean"][layer]
        assert sh["video->video"] + sh["video->audio"] + sh["video->cls"] == pytest.approx(1.0)
        assert set(res["blocking"]["contrasts"][layer]) == {"multisensory-visual", "multisensory-auditory"}
    assert all(v["n_layers"] == 3 for v in res["relation"]["correlations"].values())
    prov = read_json(folder / "provenance.json")
    assert prov["weights"]["is_random"] is True and prov["config"]["model_options"]["config"]["hidden_size"] == 32

    # independent check: re-read both feature sets from the cache and re-fit one layer by hand
    options = {"config": tiny_config(num_hidden_layers=3)}
    full, _ = pipeline.model_features("tvlt", short_demo, ["layer-2"], "random", cache=cache, progress=False,
                                      model_options=options)
    blocked, _ = pipeline.model_features("tvlt", short_demo, ["layer-2"], "random", cache=cache, progress=False,
                                         model_options=dict(options, block_cross_modal=True))
    assert not np.allclose(full["layer-2"]["train-01"], blocked["layer-2"]["train-01"])
    keep = np.any(np.stack(list(short_demo.rois.values())), axis=0)
    resp = short_demo.load_responses("01")
    sub = Responses(resp.subject, {k: v[..., keep] for k, v in resp.runs.items()})
    arrays = np.load(folder / "arrays.npz")
    for feats, name, key in ((full, "r_full", "r_full"), (blocked, "r_blocked", "r_residual")):
        r = fit_evaluate(short_demo, feats["layer-2"], sub).r
        np.testing.assert_allclose(arrays[f"{name}_layer-2"][keep], r, rtol=1e-5, atol=1e-6)
        assert np.isnan(arrays[f"{name}_layer-2"][~keep]).all()
        for roi, mask in short_demo.rois.items():
            assert res["blocking"]["roi"]["layer-2"][roi][key] == pytest.approx(np.nanmean(r[mask[keep]]), abs=1e-5)
    for roi in short_demo.rois:
        e = res["blocking"]["roi"]["layer-2"][roi]
        assert e["drop"] == pytest.approx(e["r_full"] - e["r_residual"], abs=1e-6) and 0 < e["q"] <= 1

    # the cache holds both conditions apart: one key per run and condition, blocking in the key
    keys = [json.loads(p.read_text()) for p in (cache / "tvlt").glob("*/key.json")]
    assert len(keys) == 2 * len(short_demo.runs)
    assert sum(bool(k["window"].get("block_cross_modal")) for k in keys) == len(short_demo.runs)
    assert len({k["window"]["random_config"] for k in keys}) == 1


def test_the_study_refuses_models_without_cross_modal_blocking(short_demo):
    from mmneuro.errors import InputError

    with pytest.raises(InputError, match="cannot block cross-modal attention"):
        face.attention_study(short_demo, model="melspec", out=None, echo=None)
    with pytest.raises(InputError, match="ROI 'nowhere'"):
        face.attention_study(short_demo, unisensory=("nowhere",), out=None, echo=None)
