"""Every notebook executes top to bottom on the demo (or Alice) so none can rot, and leaves the
result its study promises."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

#: notebook stem -> files (glob patterns relative to $MMNEURO_RESULTS; ``*`` = the config digest) the notebook
#: must have written.
EXPECTED = {
    "01_quickstart": ["demo/sub-01/minilm-*/scores.json"],
    "02_layerwise": ["demo/sub-01/ablate-layers/minilm-*/results.json"],
    "08_alice_real_data": ["alice/sub-all/ablate-layers/minilm-*/results.json"],
    "03_uni_vs_multimodal": ["demo/sub-01/uni_vs_multi/comparison.json"],
    "07_attention": ["demo/sub-01/ablate-attention/tvlt_random-weights-*/results.json"],
    "06_expert_collapse": ["demo/sub-01/ablate-experts/qwen3-vl-moe_random-weights-*/results.json"],
    "04_feature_removal": ["demo/sub-01/ablate-remove/tvlt_random-weights-minus-melspec-*/results.json",
                           "demo/sub-01/ablate-remove/tvlt_random-weights-minus-vit_random-weights-*/results.json"],
    "05_variance_partitioning": ["demo/sub-01/ablate-partition/audio-melspec+visual-vit_random-weights-*/results.json"],
    "09_roi_events_study": ["alice-rois/group/events-hrf-*/scores.json", "alice-rois-python/group/events-hrf-*/scores.json"],
}


def test_every_notebook_declares_its_outputs():
    assert sorted(EXPECTED) == sorted(p.stem for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, demo_root, feature_cache, tmp_path, monkeypatch):
    if path.stem in ("08_alice_real_data", "09_roi_events_study"):  # real data: skipped with the reason when the folder is absent
        from mmneuro.datasets.alice import resolve_alice_root
        from mmneuro.errors import InputError
        try:
            resolve_alice_root()
        except InputError as err:
            pytest.skip(f"real Alice data absent: {err}")
    monkeypatch.setenv("MMNEURO_DEMO", str(demo_root))
    monkeypatch.setenv("MMNEURO_CACHE", str(feature_cache))
    monkeypatch.setenv("MMNEURO_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    for rel in EXPECTED[path.stem]:
        assert list((tmp_path / "results").glob(rel)), f"{path.name} did not write {rel}"
