"""benchmarks.training --flops: the counted FLOPs (CPU attention included) and the rows, on tiny models."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.training import recipe_settings
from benchmarks.training_flops import configuration, measure_configuration
from videogpt_core.models.config import VideoGPTConfig


def _attention_flops(is_causal: bool) -> int:
    q, k, v = (torch.randn(2, 3, 8, 4, requires_grad=True) for _ in range(3))
    counter = FlopCounterMode(display=False)
    with counter:
        F.scaled_dot_product_attention(q, k, v, is_causal=is_causal).sum().backward()
    return counter.get_total_flops()


def test_cpu_attention_is_counted_and_causal_counts_half():
    product = 2 * (2 * 3) * 8 * 8 * 4  # one (8 x 4) @ (4 x 8) product per head: 2 * heads * L * L * d
    # Forward: scores and output; backward: recomputed scores, dP, dV, dQ, dK (as PyTorch counts its GPU kernels).
    assert _attention_flops(False) == 2 * product + 5 * product
    assert _attention_flops(True) == (2 * product + 5 * product) // 2


def test_rows_give_flops_against_the_ceiling_for_each_recipe():
    recipes = {name: recipe_settings(name) for name in ("before", "unfused")}
    tiny = VideoGPTConfig(latent_shape=(2, 4, 4), n_codes=16, embedding_dim=8, sequence_length=4, resolution=16,
                          hidden_dim=12, n_heads=2, n_layers=1, n_cond_frames=1, frame_encoder_widths=(4, 4, 4, 6),
                          frame_encoder_blocks=(1, 1, 1, 1), action_dim=2)
    rows = measure_configuration("tiny", tiny, recipes, batch=2, rounds=2, device=torch.device("cpu"))
    assert [row["recipe"] for row in rows] == ["before", "unfused"]
    assert rows[0]["gflop_per_step"] == rows[1]["gflop_per_step"] > 0  # counted once, the same arithmetic
    for row in rows:
        assert len(row["round_percent"]) == 2 and row["ceiling_gflops"] > 0 and 0 < row["percent_of_ceiling"]
    assert recipe_settings("compiled") == dict(recipe_settings("after"), compile=True)
    assert recipe_settings("unfused") == dict(recipe_settings("after"), unfused_qkv=True)


def test_the_per_frame_configurations_are_causal_and_one_frame_per_latent():
    checkpoint = Path(__file__).resolve().parents[1] / "checkpoints" / "vizdoom"
    vqvae = configuration("frame-vqvae", checkpoint)
    assert vqvae.causal and vqvae.latent_shape == (16, 8, 8)
    world, frame = configuration("world-prior", checkpoint), configuration("frame-prior", checkpoint)
    assert (frame.hidden_dim, frame.n_layers, frame.n_heads) == (world.hidden_dim, world.n_layers, world.n_heads)
    assert frame.frames_per_latent == 1 and frame.n_cond_frames == 0 and frame.action_dim == 3
    assert frame.seq_len == world.seq_len == 1024
