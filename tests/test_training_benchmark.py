"""benchmarks.training's before / after comparison on a tiny pipeline folder (the harness, not the speed)."""
from __future__ import annotations

import json

import torch

from benchmarks import training
from videogpt_core.models.checkpoints import save_pipeline
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE


def test_recipes_are_compared_interleaved_with_fixed_run_losses(tmp_path, capsys):
    torch.manual_seed(0)
    vqvae = VQVAE(embedding_dim=8, n_codes=16, n_hiddens=8, n_res_layers=1, downsample=(4, 4, 4),
                  sequence_length=4, resolution=64)
    prior = VideoGPT.for_vqvae(vqvae, hidden_dim=12, n_heads=2, n_layers=1, n_cond_frames=1,
                               frame_encoder_widths=(4, 4, 4, 6), frame_encoder_blocks=(1, 1, 1, 1), action_dim=2)
    save_pipeline(tmp_path / "pipe", vqvae, prior)
    out = tmp_path / "compare.json"
    training.main(["--checkpoint", str(tmp_path / "pipe"), "--batch", "2", "--rounds", "2", "--repeats", "1",
                   "--loss-steps", "2", "--threads", "1", "--device", "cpu", "--json", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [(r["model"], r["recipe"]) for r in rows] == [("vqvae", "before"), ("vqvae", "after"),
                                                         ("prior", "before"), ("prior", "after")]
    before = training.recipe_settings("before")
    assert before == dict(dropout=0.2, attn_dropout=0.3, amp="none")
    for row in rows:
        assert len(row["round_ms"]) == 2 and row["ms_per_step"] > 0
        assert all(torch.isfinite(torch.tensor([row["fixed_run_loss"], row["held_out_loss"]])))
    assert rows[0]["speedup"] == 1.0 and rows[2]["speedup"] == 1.0
    assert rows[3]["attn_dropout"] == 0.0  # today's CPU default
    assert "load average" in capsys.readouterr().out
