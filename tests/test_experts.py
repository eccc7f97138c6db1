"""Expert-collapse study: routing interventions on a tiny random Qwen3-VL-MoE, each expert's
output, routing statistics through the model, the cache key, and the ``ablate experts`` face.

References are independent of the code under test: the routing and the experts recomputed
by hand from the block's weights (softmax, top-k, SiLU-gated MLP), a model built natively with
one expert per token, forward hooks on the transformers modules, and the feature store's
own key digests.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from media import write_square_video

from strict_json import read_json
from mmneuro.analyses.experts import collect_routing
from mmneuro.datasets.base import StimulusRun
from mmneuro.errors import InputError
from mmneuro.models import WindowInput, get_adapter
from mmneuro.models.moe import tiny_config
from mmneuro.models.moe_intervention import (
    RouterIntervention,
    plant_collapsed_router,
    route,
)
from mmneuro.results import latest_result

L3 = 2  # decoder block index of "layer-3" (sparse; block 1 is dense in tiny_config)


def moe(**kw):
    cfg = kw.pop("config", None) or tiny_config()
    return get_adapter("qwen3-vl-moe", weights="random", seed=0, config=cfg, device="cpu", image_size=32, n_frames=4, **kw)


@pytest.fixture(scope="module")
def batch_windows():
    rng = np.random.default_rng(11)
    return [WindowInput(frames=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), text=["a", "red", "ball"]),
            WindowInput(frames=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), text=["rolls"])]


def run_with_taps(adapter, windows, block=L3):
    """Forward with hooks on one block's MoE: its input, output and the experts' routing arguments."""
    taps = {}
    mlp = adapter.model.language_model.layers[block].mlp
    hooks = [
        mlp.register_forward_hook(lambda m, a, o: taps.update(x=a[0].detach().clone(), y=o.detach().clone())),
        mlp.experts.register_forward_hook(lambda m, a, o: taps.update(idx=a[1].clone(), w=a[2].clone())),
    ]
    try:
        with torch.inference_mode():
            out = adapter.forward(adapter.collate([adapter.preprocess(w) for w in windows]))
    finally:
        for h in hooks:
            h.remove()
    return out, taps


@torch.no_grad()
def expert_by_hand(mlp, e, x):
    """Expert e of a Qwen3-VL-MoE block on tokens x (n, D): down(silu(gate x) * up x)."""
    x = x.clone()
    gu = mlp.experts.gate_up_proj[e]  # (2I, D)
    inter = gu.shape[0] // 2
    h = F.silu(x @ gu[:inter].T) * (x @ gu[inter:].T)
    return h @ mlp.experts.down_proj[e].T


@torch.no_grad()
def moe_by_hand(mlp, x, top_k, disabled=()):
    """The block output by hand: softmax over the allowed experts, top-k, renormalise, weighted sum."""
    x = x.clone()
    logits = x @ mlp.gate.weight.T
    allowed = [e for e in range(logits.shape[1]) if e not in disabled]
    probs = torch.softmax(logits[:, allowed].double(), dim=-1)
    top, pos = torch.topk(probs, top_k, dim=-1)
    top = top / top.sum(-1, keepdim=True)
    y = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(top_k):
            e = allowed[int(pos[t, j])]
            y[t] += float(top[t, j]) * expert_by_hand(mlp, e, x[t : t + 1])[0]
    return y


def same_parameters(a, b) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- acceptance 2: the intervention changes what it should and nothing else -------------------


def test_disabling_an_expert_changes_only_the_tokens_routed_to_it(batch_windows):
    base = moe()
    out0, tap0 = run_with_taps(base, batch_windows)
    routed = tap0["idx"]  # (n_tokens, 2) experts of each token at layer-3
    counts = torch.bincount(routed.flatten(), minlength=4)
    e = int(torch.argmax(counts))  # the most used expert: many tokens route to it, others do not
    cut = moe(disable_experts={"layer-3": [e]})
    assert same_parameters(base, cut)
    out1, tap1 = run_with_taps(cut, batch_windows)

    # layers before layer-3 are bit-identical, and so is the MoE block's input
    for layer in ("layer-0", "layer-1", "layer-2"):
        assert torch.equal(out0.hidden[layer], out1.hidden[layer]), layer
    assert torch.equal(tap0["x"], tap1["x"])
    assert not torch.equal(out0.hidden["layer-3"], out1.hidden["layer-3"])

    hit = (routed == e).any(dim=-1)  # tokens (flattened over batch and sequence) that used expert e
    assert 0 < int(hit.sum()) < hit.numel()
    y0 = tap0["y"].reshape(-1, tap0["y"].shape[-1])
    y1 = tap1["y"].reshape(-1, tap1["y"].shape[-1])
    torch.testing.assert_close(y1[~hit], y0[~hit], rtol=1e-5, atol=1e-7)  # untouched tokens
    assert bool(((y1[hit] - y0[hit]).abs().amax(dim=-1) > 1e-6).all())  # every routed token changed
    # ... and the changed outputs are what the block computes without expert e, by hand
    x = tap1["x"].reshape(-1, tap1["x"].shape[-1])
    mlp = cut.model.language_model.layers[L3].mlp
    torch.testing.assert_close(y1, moe_by_hand(mlp, x, top_k=2, disabled=(e,)), rtol=1e-4, atol=1e-6)

    # no token's routing gives weight to e any more; the reported router logits say so
    assert not bool((tap1["idx"] == e).any())
    assert bool(torch.isneginf(out1.router_logits["layer-3"][..., e]).all())
    assert bool(torch.isfinite(out1.router_logits["layer-1"]).all())  # the other MoE layer is untouched
    torch.testing.assert_close(tap1["w"].sum(-1), torch.ones(len(x)))


def test_forcing_top1_equals_a_model_built_with_one_expert_per_token(batch_windows):
    forced = moe(force_top1=True)  # tiny_config routes 2 experts per token
    native = moe(config=tiny_config(top_k=1))  # same shapes, same seed: same weights, HF's own top-1 routing
    assert same_parameters(forced, native)
    out_f, tap_f = run_with_taps(forced, batch_windows)
    out_n, _ = run_with_taps(native, batch_windows)
    for layer in forced.layer_names:
        torch.testing.assert_close(out_f.hidden[layer], out_n.hidden[layer], rtol=1e-5, atol=1e-6)
    # each token goes to its most probable expert with weight exactly 1 (checked by hand at layer-3)
    x = tap_f["x"].reshape(-1, tap_f["x"].shape[-1])
    mlp = forced.model.language_model.layers[L3].mlp
    assert tap_f["idx"].shape == (len(x), 1) and bool((tap_f["w"] == 1).all())
    with torch.no_grad():
        assert torch.equal(tap_f["idx"][:, 0], torch.argmax(x.clone() @ mlp.gate.weight.T, dim=-1))
    torch.testing.assert_close(tap_f["y"].reshape(len(x), -1), moe_by_hand(mlp, x, top_k=1), rtol=1e-4, atol=1e-6)
    # a model that already routes top-1 is left bit-identical by forcing top-1
    already = moe(config=tiny_config(top_k=1), force_top1=True)
    out_a, _ = run_with_taps(already, batch_windows)
    for layer in native.layer_names:
        assert torch.equal(out_a.hidden[layer], out_n.hidden[layer]), layer


def test_expert_outputs_are_weighted_contributions_that_sum_to_the_block_output(batch_windows):
    plain = moe()
    split = moe(expert_outputs=True)
    out_p, _ = run_with_taps(plain, batch_windows)
    out_s, tap = run_with_taps(split, batch_windows)
    for layer in plain.layer_names:  # the expert taps change no hidden state
        assert torch.equal(out_p.hidden[layer], out_s.hidden[layer])
    assert split.layer_names[len(plain.layer_names):] == [f"layer-{l}/expert-{e}" for l in (1, 3) for e in range(4)]
    parts = torch.stack([out_s.hidden[f"layer-3/expert-{e}"] for e in range(4)])  # (E, B, T, D)
    torch.testing.assert_close(parts.sum(0), tap["y"], rtol=1e-5, atol=1e-7)
    x = tap["x"].reshape(-1, tap["x"].shape[-1])
    flat = parts.reshape(4, len(x), -1)
    mlp = split.model.language_model.layers[L3].mlp
    for e in range(4):
        uses = (tap["idx"] == e)
        w = (tap["w"] * uses).sum(-1)
        assert bool((flat[e][~uses.any(-1)] == 0).all())  # tokens not routed to e: exactly zero
        t = int(torch.nonzero(uses.any(-1))[0])
        torch.testing.assert_close(flat[e][t], w[t] * expert_by_hand(mlp, e, x[t : t + 1])[0], rtol=1e-4, atol=1e-7)
    # pooled with "mean": an expert's share of the window's mean MoE output (shares sum to it)
    pooled = split.pool(out_s, "mean", layers=[f"layer-3/expert-{e}" for e in range(4)])
    real = torch.as_tensor(out_s.router_token_modality != "pad")
    mean_y = np.stack([tap["y"][b][real[b]].mean(0).numpy() for b in range(2)])
    np.testing.assert_allclose(sum(pooled.values()), mean_y, rtol=1e-4, atol=1e-7)


def test_intervention_options_are_checked():
    a = moe()
    with pytest.raises(InputError, match="not MoE layers"):
        moe(disable_experts={"layer-2": [0]})  # layer-2 is the dense block
    with pytest.raises(InputError, match="fewer than"):
        moe(disable_experts="layer-3:0,1,2")  # 1 expert left, 2 per token
    with pytest.raises(InputError, match="LAYER:EXPERT"):
        moe(disable_experts="layer-3=0")
    with pytest.raises(InputError, match="experts 0..3"):
        route(torch.zeros(2, 4), 1, [5])
    iv = RouterIntervention.build("layer-3:2,0;layer-1:1", ["layer-3"], a.moe_layers)
    assert iv.label() == "disable[layer-1:1;layer-3:0,2]+top1[layer-3]" and iv.layers == ["layer-1", "layer-3"]
    assert RouterIntervention.build({"layer-3": [0]}).label() == "disable[layer-3:0]"


# ---- routing statistics through the model ------------------------------------------------------


@pytest.fixture(scope="module")
def media_run(tmp_path_factory):
    """3 s of video (a moving bright square at 8 fps) and a words file; TR 1 s."""
    d = tmp_path_factory.mktemp("moe")
    write_square_video(d / "v.mp4", 24)
    words = "the quick brown fox jumped over the lazy dog".split()
    lines = ["onset\tduration\tword"] + [f"{0.3 * i:.3f}\t0.25\t{w}" for i, w in enumerate(words)]
    (d / "w.tsv").write_text("\n".join(lines) + "\n")
    return StimulusRun(name="moe", tr_times=np.arange(3) + 0.5, video=d / "v.mp4", words=d / "w.tsv")


def test_routing_record_matches_the_forward_pass_and_sees_a_disabled_expert(media_run):
    from mmneuro.features.extract import plan_windows

    base = moe()
    rec = collect_routing(base, [media_run], batch_size=2, progress=False)
    # independent: all windows in one batch, real tokens picked by the attention mask
    plan = plan_windows(base, media_run)
    batch = base.collate([base.preprocess(w) for w in plan.stream()])
    with torch.inference_mode():
        out = base.forward(batch)
    real = batch["attention_mask"].bool().numpy()
    assert len(rec.modality) == real.sum() and rec.top_k == {"layer-1": 2, "layer-3": 2}
    for layer in base.moe_layers:
        np.testing.assert_allclose(rec.logits[layer], out.router_logits[layer].numpy()[real], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(rec.window, np.nonzero(real)[0])
    np.testing.assert_array_equal(rec.modality, out.router_token_modality[real])
    assert set(rec.modality) == {"video", "text", "special"}

    cut = collect_routing(moe(disable_experts="layer-3:1", force_top1=["layer-1"]), [media_run], progress=False)
    assert cut.top_k == {"layer-1": 1, "layer-3": 2}
    stats = cut.statistics()["layer-3"]
    for group in ("all", "video", "text"):
        assert stats[group].utilisation[1] == 0 and stats[group].mean_probability[1] == 0
        assert stats[group].utilisation.sum() == pytest.approx(2.0)  # two experts per token
    assert cut.statistics()["layer-1"]["all"].utilisation.sum() == pytest.approx(1.0)


def test_collapse_index_detects_a_planted_collapsed_router_in_the_model(media_run):
    balanced = collect_routing(moe(), [media_run], progress=False).statistics()
    planted_adapter = moe()
    plant_collapsed_router(planted_adapter, "layer-3", expert=2)
    assert "planted-collapse" in planted_adapter.weights.identity
    planted = collect_routing(planted_adapter, [media_run], progress=False).statistics()
    for group in ("all", "video", "text"):
        b, c = balanced["layer-3"][group], planted["layer-3"][group]
        assert b.collapse_index < 0.05 and c.collapse_index > 0.8, (group, b.collapse_index, c.collapse_index)
        assert c.top1_share == 1.0 and c.utilisation[2] == 1.0
        assert c.routing_entropy < 0.2 < 1.0 < b.routing_entropy
    assert planted["layer-1"]["all"].collapse_index < 0.2  # the other layer's router was not planted


# ---- expert alignment and the intervention test on a planted answer -----------------------------


def expert_study_data(seed: int = 0):
    """Expert 0's output drives the 'visual' targets, expert 1's the 'auditory' ones, expert 2's
    nothing; 20 further targets lie outside every ROI (pure noise)."""
    from pathlib import Path

    from mmneuro.datasets.base import Dataset, Responses

    rng = np.random.default_rng(seed)
    runs = [StimulusRun(n, (np.arange(k) + 0.5) * 2.0, split="test" if n == "test" else "train")
            for n, k in zip(["a", "b", "c", "test"], [150, 150, 150, 120])]
    w_vis, w_aud = rng.standard_normal((4, 30)), rng.standard_normal((4, 30))
    experts, resp = {0: {}, 1: {}, 2: {}}, {}
    for run in runs:
        for e in experts:
            experts[e][run.name] = rng.standard_normal((run.n_trs, 4)).astype(np.float32)
        signal = np.hstack([experts[0][run.name] @ w_vis, experts[1][run.name] @ w_aud, np.zeros((run.n_trs, 20))])
        reps = 2 if run.name == "test" else 1
        resp[run.name] = np.stack([signal + 2.0 * rng.standard_normal(signal.shape) for _ in range(reps)]
                                  ).astype(np.float32)
    idx = np.arange(80)
    rois = {"visual": idx < 30, "auditory": (idx >= 30) & (idx < 60)}
    ds = Dataset(name="experts", root=Path("."), tr=2.0, runs=runs, subjects=["01"], rois=rois,
                 load_responses=lambda s: Responses(s, resp), delays=(0,))
    return ds, experts, Responses("01", resp), rng


def test_expert_alignment_finds_the_planted_expert_of_each_roi():
    from mmneuro.analyses.experts import expert_alignment

    ds, experts, resp, _ = expert_study_data()
    inside = ds.rois["visual"] | ds.rois["auditory"]
    whole = {run.name: np.hstack([experts[e][run.name] for e in experts]) for run in ds.runs}
    a = expert_alignment(ds, {"layer-3": experts}, resp, {"layer-3": whole}, targets=inside, progress=False)
    vis, aud = a.rois.index("visual"), a.rois.index("auditory")
    assert a.roi_r.shape == (1, 3, 2) and a.r.shape == (1, 3, 80)
    assert a.roi_r[0, 0, vis] > 0.6 and a.roi_r[0, 1, aud] > 0.6
    for e, k in [(0, aud), (1, vis), (2, vis), (2, aud)]:
        assert abs(a.roi_r[0, e, k]) < 0.15, (e, k)
    assert a.best_expert() == {"layer-3": {"visual": 0, "auditory": 1}}
    assert np.isnan(a.r[:, :, ~inside]).all() and np.isfinite(a.r[:, :, inside]).all()
    assert a.layer_roi_r[0, vis] > 0.5 and a.layer_roi_r[0, aud] > 0.5  # the whole layer carries both


def test_intervention_effect_detects_a_removed_expert_where_it_mattered_only():
    from mmneuro.analyses.experts import intervention_effect

    ds, experts, resp, rng = expert_study_data(1)
    base = {"layer-3": {r.name: np.hstack([experts[0][r.name], experts[1][r.name]]) for r in ds.runs}}
    # "disable" expert 1: its output replaced by unrelated values of the same shape
    cut = {"layer-3": {r.name: np.hstack([experts[0][r.name], rng.standard_normal((r.n_trs, 4)).astype(np.float32)])
                       for r in ds.runs}}
    fx = intervention_effect(ds, base, cut, resp, n_boot=300, block_len=10)
    aud, vis = fx.roi["layer-3"]["auditory"], fx.roi["layer-3"]["visual"]
    assert aud["r_base"] > 0.6 and aud["change"] < -0.5 and aud["ci_high"] < 0 and aud["q"] < 0.05
    assert aud["change"] == pytest.approx(aud["r_intervened"] - aud["r_base"])
    assert abs(vis["change"]) < 0.05 and vis["r_base"] > 0.6
    back = intervention_effect(ds, cut, base, resp, n_boot=300, block_len=10).roi["layer-3"]["auditory"]
    assert back["change"] == pytest.approx(-aud["change"]) and back["p"] == pytest.approx(aud["p"])
    assert back["ci_low"] == pytest.approx(-aud["ci_high"])


# ---- the feature cache key ------------------------------------------------------------------------


def test_interventions_key_the_feature_cache(media_run, tmp_path):
    from mmneuro.features.extract import extract_run
    from mmneuro.features.store import FeatureStore

    store = FeatureStore(tmp_path / "cache")
    adapters = {
        "base": moe(), "experts": moe(expert_outputs=True), "cut": moe(disable_experts="layer-3:0"),
        "cut2": moe(disable_experts="layer-3:1"), "top1": moe(force_top1=True),
        "wide": moe(config=tiny_config(n_experts=6)),
    }
    keys = {}
    for name, a in adapters.items():
        extract_run(a, media_run, layers=["layer-0", "layer-3"], store=store, progress=False, report=(rep := []))
        keys[name] = rep[0].key
    assert keys["experts"] == keys["base"]  # expert outputs only add layers
    others = [keys[k] for k in ("base", "cut", "cut2", "top1", "wide")]
    assert len(set(others)) == len(others)
    # the intervened features were computed, not read back from the base model's entry
    got = {k: extract_run(adapters[k], media_run, layers=["layer-0", "layer-3"], store=store, progress=False)
           for k in ("base", "cut")}
    np.testing.assert_array_equal(got["cut"]["layer-0"].data, got["base"]["layer-0"].data)
    assert not np.array_equal(got["cut"]["layer-3"].data, got["base"]["layer-3"].data)
    fresh = extract_run(adapters["cut"], media_run, layers=["layer-3"], progress=False)
    np.testing.assert_array_equal(got["cut"]["layer-3"].data, fresh["layer-3"].data)


# ---- the face: mmneuro ablate experts ---------------------------------------------------------------


def test_ablate_experts_face_writes_a_consistent_result_folder(demo_root, tmp_path, monkeypatch):
    from mmneuro.ablate import experts as face

    monkeypatch.setenv("MMNEURO_DEMO", str(demo_root))
    parser = argparse.ArgumentParser()
    face.add_arguments(parser)
    args = parser.parse_args(["--dataset", str(demo_root), "--subject", "1", "--weights", "random",
                              "--layers", "layer-3", "--runs", "train-01", "test-01", "--n-boot", "200",
                              "--out", str(tmp_path / "results"), "--cache", str(tmp_path / "cache"), "--no-progress"])
    folder = face.run(args)
    assert folder == latest_result(tmp_path / "results" / "demo" / "sub-01" / "ablate-experts", "qwen3-vl-moe_random-weights")
    for name in ("results.json", "arrays.npz", "change_r_layer-3.nii.gz", "provenance.json", "figure.png"):
        assert (folder / name).is_file(), name
    res = read_json(folder / "results.json")
    assert res["random_weights"] and res["runs"] == ["train-01", "test-01"] and res["layers"] == ["layer-3"]

    # the auto intervention disabled the expert ranked first most often; afterwards it gets no token
    base, after = res["routing"]["base"]["layer-3"]["all"], res["routing"]["intervened"]["layer-3"]["all"]
    (e,) = res["intervention"]["disable"]["layer-3"]
    assert res["intervention"]["label"] == f"disable[layer-3:{e}]"
    assert after["utilisation"][e] == 0 and after["mean_probability"][e] == 0 and base["utilisation"][e] > 0
    assert base["n_tokens"] == after["n_tokens"] == sum(res["routing"]["base"]["layer-3"][g]["n_tokens"]
                                                         for g in ("video", "text", "special"))
    changes = res["intervention"]["feature_changes"]
    assert [l for l, c in changes.items() if c["identical"]] == ["layer-0", "layer-1", "layer-2"]
    assert not changes["layer-3"]["identical"]

    # ROI numbers agree with the voxel arrays written beside them
    from mmneuro.datasets.demo import load_demo

    ds = load_demo(demo_root)
    arrays = np.load(folder / "arrays.npz")
    ea = res["expert_alignment"]
    for j, roi in enumerate(ea["rois"]):
        mask = ds.rois[roi]
        for k in range(4):
            assert ea["roi_r"][0][k][j] == pytest.approx(np.nanmean(arrays["expert_r"][0, k][mask]), abs=1e-6)
        d = res["intervention"]["roi"]["layer-3"][roi]
        change = np.nanmean(arrays["r_intervened_layer-3"][mask] - arrays["r_base_layer-3"][mask])
        assert d["change"] == pytest.approx(change, abs=1e-5)
        assert d["ci_low"] <= d["ci_high"] and 0 < d["p"] <= 1 and d["q"] >= d["p"] - 1e-12
    outside = ~np.any(np.stack(list(ds.rois.values())), axis=0)
    assert np.isnan(arrays["expert_r"][0, 0][outside]).all()  # only ROI voxels were encoded
    prov = read_json(folder / "provenance.json")
    assert prov["config"]["runs"] == ["train-01", "test-01"] and prov["weights"]["is_random"]


def test_auto_intervention_picks_the_dominant_expert_and_an_empty_one_is_refused():
    from mmneuro.ablate.experts import _resolve_intervention

    with pytest.raises(InputError, match="no intervention"):
        _resolve_intervention("none", None, ["layer-3"], {})
    assert _resolve_intervention("auto", True, ["layer-3"], {"layer-3": np.array([[0.0, 1.0], [0.0, 2.0], [3.0, 0]])}) \
        == {"disable": {"layer-3": [1]}, "force_top1": ["layer-3"]}
