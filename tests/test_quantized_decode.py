"""The opt-in int8 decode path (`quantize="int8"`): close to float32 decoding for every conditioning, the
float default untouched, and clear errors for what it does not support."""
from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks import sampling
from tiny_models import random_inputs, tiny_prior, tiny_vqvae
from videogpt_core.inference.pipeline import VideoGPTPipeline, load_pipeline
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.models.checkpoints import save_pipeline
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.quantization import Int8Linear, TransposedLinear, check_quantize

# Measured on the tiny priors: up to 2.3 % relative logit error and 1 argmax flip in 64 positions; at the
# reference BAIR size (random weights) 1.5-2 % and 96-99 % of argmaxes kept. The bounds leave room for
# other CPUs' kernels.
MAX_RELATIVE_ERROR = 0.05
MIN_ARGMAX_AGREEMENT = 0.9
CONDITIONINGS = ["none", "frames", "class", "actions"]


def cached_logits(prior, inputs: dict, codes: torch.Tensor, quantize: str | None) -> torch.Tensor:
    """(B, L, n_codes): the start token by prefill, then every position by decode_step (teacher-forced)."""
    state = prior.start_decoding(codes.shape[0], quantize=quantize, conditions=Conditions(**inputs))
    logits = [prior.prefill(state)]
    for position in range(1, codes.shape[1]):
        logits.append(prior.decode_step(state, codes[:, position - 1], position))
    return torch.stack(logits, dim=1)


def random_codes(prior, batch: int, seed: int = 3) -> torch.Tensor:
    return torch.randint(0, prior.n_codes, (batch, prior.config.seq_len), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_int8_logits_are_close_to_float_logits(conditioning):
    prior = tiny_prior(tiny_vqvae(), conditioning)
    inputs = random_inputs(prior, 2)
    codes = random_codes(prior, 2)
    exact = cached_logits(prior, inputs, codes, None)
    quantized = cached_logits(prior, inputs, codes, "int8")
    relative_error = ((quantized - exact).norm() / exact.norm()).item()
    assert 0 < relative_error < MAX_RELATIVE_ERROR  # > 0: the int8 path really ran
    agreement = (quantized.argmax(-1) == exact.argmax(-1)).float().mean().item()
    assert agreement >= MIN_ARGMAX_AGREEMENT


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_greedy_generation_is_mostly_the_same(conditioning):
    vqvae = tiny_vqvae()
    inputs = {"none": {}, "frames": dict(frames=np.full((16, 16, 3), 100, np.uint8)), "class": dict(label=1),
              "actions": dict(actions=np.random.default_rng(0).normal(size=(4, 2)))}[conditioning]
    codes = {}
    for quantize in (None, "int8"):
        # A prior each: the pipeline sets its prior's decode_quantize.
        pipeline = VideoGPTPipeline(vqvae, tiny_prior(vqvae, conditioning), device="cpu", vqvae_bf16=False,
                                    quantize=quantize)
        codes[quantize] = pipeline.generate(n=2, options=SamplingOptions(top_k=1), seed=0, **inputs).codes
    assert (codes[None] == codes["int8"]).float().mean().item() >= 0.75  # measured 0.875-1


def test_float_default_keeps_the_float_layout_and_matches_the_forward():
    prior = tiny_prior(tiny_vqvae(), "frames")
    inputs = random_inputs(prior, 2)
    state = prior.start_decoding(2, conditions=Conditions(**inputs))
    block, copied = prior.blocks[0], state.decoder.blocks[0]
    layers = [copied.attn.w_qkv, copied.attn.fc, copied.enc_attn.w_qs, copied.enc_attn.fc, copied.fc_block[0],
              copied.fc_block[2], state.decoder.fc_out]
    assert all(isinstance(layer, TransposedLinear) for layer in layers)
    assert torch.equal(copied.fc_block[0].weight_t, block.fc_block[0].weight.t())
    assert torch.equal(copied.attn.w_qkv.weight_t, torch.cat([block.attn.w_qs.weight, block.attn.w_ks.weight,
                                                              block.attn.w_vs.weight]).t())
    assert torch.equal(copied.enc_attn.fc.weight_t, block.enc_attn.fc.weight.t())
    assert torch.equal(state.decoder.fc_out.weight_t, prior.fc_out.weight.t())
    assert isinstance(block.attn.w_qs, torch.nn.Linear) and block.attn.w_qkv is None  # the model is untouched
    codes = random_codes(prior, 2)
    with torch.no_grad():
        forward = prior(codes.view(2, *prior.latent_shape), **inputs).flatten(1, 3)
    torch.testing.assert_close(cached_logits(prior, inputs, codes, None), forward, atol=1e-5, rtol=1e-5)
    int8 = prior.start_decoding(2, quantize="int8", conditions=Conditions(**inputs)).decoder
    assert isinstance(int8.blocks[0].fc_block[2], Int8Linear) and isinstance(int8.fc_out, Int8Linear)
    assert set(prior.decoders) == {None, "int8"}  # one decoding copy per weight format


def test_pipelines_sharing_a_prior_keep_their_own_setting():
    vqvae = tiny_vqvae()
    prior = tiny_prior(vqvae)
    float_pipeline = VideoGPTPipeline(vqvae, prior, device="cpu", vqvae_bf16=False)
    int8_pipeline = VideoGPTPipeline(vqvae, prior, device="cpu", vqvae_bf16=False, quantize="int8")
    with mock.patch.object(prior, "start_decoding", wraps=prior.start_decoding) as start_decoding:
        int8_pipeline.generate(seed=0)
        float_pipeline.generate(seed=0)
    assert [call.kwargs["quantize"] for call in start_decoding.call_args_list] == ["int8", None]


def test_int8_weight_round_trip_padding_and_zero_rows():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(10, 37, generator=generator)  # 37 inputs: padded to 48 for the kernel
    weight[3] = 0  # fc_out starts all zero
    bias = torch.randn(10, generator=generator)
    quantized, unbiased = Int8Linear(weight, bias), Int8Linear(weight)
    assert quantized.values.shape == (10, 48) and quantized.values.dtype == torch.int8
    assert quantized.values[:, 37:].abs().sum() == 0 and quantized.values[3].abs().sum() == 0
    step = quantized.scales.float()[:, None]
    assert ((quantized.dequantize() - weight).abs() <= 0.51 * step).all()
    x = torch.randn(2, 5, 37, generator=generator)  # any leading shape
    reference = F.linear(x, quantized.dequantize(), bias)
    torch.testing.assert_close(quantized(x), reference, atol=0.05, rtol=0.02)  # bf16 activations
    assert unbiased(x)[..., 3].abs().max() == 0


def test_many_rows_use_the_dequantized_weight_and_agree_with_the_kernel(monkeypatch):
    prior = tiny_prior(tiny_vqvae(), "frames")
    inputs = random_inputs(prior, 1)
    codes = random_codes(prior, 1)
    state = prior.start_decoding(1, quantize="int8", conditions=Conditions(**inputs))
    by_kernel = prior.prefill(state, codes[:, :20])
    monkeypatch.setattr(Int8Linear, "KERNEL_MAX_ROWS", 0)  # every call through the float GEMM
    state = prior.start_decoding(1, quantize="int8", conditions=Conditions(**inputs))
    by_float_gemm = prior.prefill(state, codes[:, :20])
    relative = ((by_kernel - by_float_gemm).norm() / by_float_gemm.norm()).item()
    assert relative < 0.02  # they differ only by bfloat16 rounding of the activations


def test_bad_quantize_values_raise():
    prior = tiny_prior(tiny_vqvae())
    with pytest.raises(ValueError, match="quantize must be None"):
        prior.start_decoding(1, quantize="int4")
    with pytest.raises(ValueError, match="CPU"):
        check_quantize("int8", "cuda")
    check_quantize(None, "cuda")  # float decoding runs anywhere
    vqvae = tiny_vqvae()
    with pytest.raises(ValueError, match="quantize must be None"):
        VideoGPTPipeline(vqvae, tiny_prior(vqvae), device="cpu", quantize="fp8")
    # Raised before anything moves to the GPU; without one, the device itself is refused first.
    expected = "CPU" if torch.cuda.is_available() else "sees no CUDA GPU"
    with pytest.raises(ValueError, match=expected):
        VideoGPTPipeline(vqvae, tiny_prior(vqvae), device="cuda", quantize="int8")


def test_load_pipeline_takes_quantize(tmp_path):
    vqvae = tiny_vqvae()
    save_pipeline(tmp_path / "tiny", vqvae, tiny_prior(vqvae))
    pipeline = load_pipeline(tmp_path / "tiny", device="cpu", vqvae_bf16=False, quantize="int8")
    assert pipeline.quantize == "int8"
    assert pipeline.generate(n=1, seed=0).codes.shape == (1, *pipeline.prior.latent_shape)
    with pytest.raises(ValueError, match="quantize must be None"):
        load_pipeline(tmp_path / "tiny", device="cpu", quantize="int16")


def test_sampling_benchmark_runs_quantized(tmp_path, capsys):
    out = tmp_path / "sampling.json"
    sampling.main(["--sizes", "tiny", "--batch", "1", "--device", "cpu", "--window", "2", "--repeats", "1",
                   "--no-naive", "--no-reference", "--quantize", "int8", "--json", str(out)])
    capsys.readouterr()
    result = json.loads(out.read_text())
    (row,) = result["results"]
    assert row["sampler"].endswith("int8") and row["ms_per_step"] > 0
    assert result["settings"]["quantize"] == "int8"
