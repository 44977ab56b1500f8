"""Tests for the VQ-VAE and its EMA codebook: shapes, exact codebook arithmetic, straight-through gradients,
buffers that must not move, input validation and a tiny overfit."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from videogpt_core import VQVAE, VQVAEConfig
from videogpt_core.models.codebook import Codebook


def tiny_vqvae(**overrides) -> VQVAE:
    config = dict(embedding_dim=8, n_codes=16, n_hiddens=16, n_res_layers=1, downsample=(2, 2, 2),
                  sequence_length=4, resolution=8)
    config.update(overrides)
    return VQVAE(**config)


def random_video(shape, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) - 0.5


def buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in module.named_buffers()}


def assert_buffers_unchanged(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    changed = [name for name, b in module.named_buffers() if not torch.equal(b, before[name])]
    assert changed == [], f"buffers changed: {changed}"


# ------------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("downsample, clip", [
    ((2, 2, 2), (4, 8, 8)),
    ((1, 2, 2), (2, 8, 8)),
    ((4, 2, 2), (8, 8, 8)),
    ((4, 4, 4), (8, 8, 8)),
    ((2, 2, 2), (4, 8, 16)),  # non-cubic: wide
    ((4, 4, 4), (4, 16, 8)),  # non-cubic: tall, one latent step
    ((1, 2, 2), (3, 6, 10)),  # odd frame count, time not strided
    ((2, 4, 1), (2, 8, 6)),  # one axis never halved
])
def test_encode_decode_forward_shapes(downsample, clip):
    t, h, w = clip
    model = tiny_vqvae(downsample=downsample, sequence_length=8, resolution=8).eval()
    video = random_video((2, 3, t, h, w))
    latent = (t // downsample[0], h // downsample[1], w // downsample[2])
    assert model.latent_shape_for(t, h, w) == latent

    codes = model.encode(video)
    assert codes.shape == (2, *latent) and codes.dtype == torch.int64
    assert 0 <= codes.min() and codes.max() < model.n_codes
    decoded = model.decode(codes)
    assert decoded.shape == (2, 3, t, h, w) and decoded.dtype == torch.float32

    out = model(video)
    assert out["recon"].shape == video.shape
    assert out["codes"].shape == (2, *latent)
    for name in ("loss", "recon_loss", "commitment_loss", "perplexity", "usage"):
        assert out[name].dim() == 0, name
    assert torch.isclose(out["loss"], out["recon_loss"] + out["commitment_loss"])


@pytest.mark.parametrize("downsample, sequence_length, resolution, latent", [
    ((4, 2, 2), 16, 64, (4, 32, 32)),  # the reference's BAIR configuration
    ((4, 4, 4), 16, 128, (4, 32, 32)),  # UCF-101
    ((2, 4, 4), 16, 128, (8, 32, 32)),  # Kinetics 2x4x4
    ((1, 2, 2), 4, 8, (4, 4, 4)),
])
def test_latent_shape_and_sizes(downsample, sequence_length, resolution, latent):
    model = tiny_vqvae(downsample=downsample, sequence_length=sequence_length, resolution=resolution,
                       n_codes=24, embedding_dim=6)
    assert model.latent_shape == latent == model.config.latent_shape
    assert model.n_codes == 24 and model.embedding_dim == 6
    assert model.codebook.embeddings.shape == (24, 6)
    # One strided conv per halving of the most-halved axis, in the encoder and the decoder.
    n_strided = int(math.log2(max(downsample)))
    assert len(model.encoder.convs) == len(model.decoder.convts) == n_strided


def test_downsample_two_uses_a_single_strided_conv_and_works():
    """The reference crashes on a single halving; ours must not."""
    model = tiny_vqvae(downsample=(2, 2, 2)).eval()
    assert len(model.encoder.convs) == 1
    assert model.decode(model.encode(random_video((1, 3, 4, 8, 8)))).shape == (1, 3, 4, 8, 8)


@pytest.mark.parametrize("overrides, message", [
    (dict(downsample=(3, 2, 2)), "powers of two"),
    (dict(downsample=(2, 2)), "powers of two"),
    (dict(downsample=(1, 1, 1)), "at least one axis"),
    (dict(downsample=(4, 2, 2), sequence_length=6), "divisible"),
    (dict(downsample=(2, 4, 4), resolution=6), "divisible"),
    (dict(n_hiddens=15), "n_hiddens"),
    (dict(causal=True, downsample=(2, 2, 2)), "its own latent slice"),
    (dict(per_frame=True, downsample=(1, 2, 2)), "causal too"),
])
def test_bad_configs_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        VQVAEConfig(**{**dict(sequence_length=8, resolution=8, downsample=(2, 2, 2)), **overrides})


def test_config_and_keywords_are_exclusive():
    with pytest.raises(ValueError, match="either a config or keyword"):
        VQVAE(VQVAEConfig(sequence_length=4, resolution=8, downsample=(2, 2, 2)), n_codes=8)


# ------------------------------------------------------------------------------------------------ causal time


def trained_looking(model: VQVAE) -> VQVAE:
    """Non-trivial BatchNorm statistics and codebook, so a leak from a later frame would change some code."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(random_video((4, 3, 6, 8, 8), seed=7))
    return model.eval()


def test_causal_codes_of_the_first_frames_do_not_depend_on_later_frames():
    model = trained_looking(tiny_vqvae(causal=True, downsample=(1, 2, 2), sequence_length=6, n_codes=64))
    video = random_video((2, 3, 6, 8, 8), seed=1)
    other_future = torch.cat([video[:, :, :3], random_video((2, 3, 3, 8, 8), seed=2)], dim=2)
    codes = model.encode(video)
    for k in (1, 3):
        assert torch.equal(model.encode(video[:, :, :k]), codes[:, :k])
    assert torch.equal(model.encode(other_future)[:, :3], codes[:, :3])
    with torch.no_grad():
        latents, other_latents = model.quantizer_input(video), model.quantizer_input(other_future)
    assert torch.allclose(latents[:, :, :3], other_latents[:, :, :3], atol=1e-5)
    # Decoding is causal too: the first frames' pixels come from the first frames' codes alone.
    assert torch.allclose(model.decode(codes[:, :2]), model.decode(codes)[:, :, :2], atol=1e-5)


def test_the_non_causal_codec_does_look_ahead():
    """The check above can fail: without the option, changing later frames changes earlier codes."""
    model = trained_looking(tiny_vqvae(downsample=(1, 2, 2), sequence_length=6, n_codes=64))
    video = random_video((2, 3, 6, 8, 8), seed=1)
    other_future = torch.cat([video[:, :, :3], random_video((2, 3, 3, 8, 8), seed=2)], dim=2)
    with torch.no_grad():
        latents, other_latents = model.quantizer_input(video), model.quantizer_input(other_future)
    assert (latents[:, :, :3] - other_latents[:, :, :3]).abs().max() > 1e-2


def test_per_frame_codes_depend_on_their_own_frame_only():
    model = trained_looking(tiny_vqvae(causal=True, per_frame=True, downsample=(1, 2, 2), sequence_length=6,
                                       n_codes=64))
    video = random_video((2, 3, 6, 8, 8), seed=1)
    other_past = torch.cat([random_video((2, 3, 3, 8, 8), seed=2), video[:, :, 3:]], dim=2)
    codes = model.encode(video)
    assert torch.equal(model.encode(other_past)[:, 3:], codes[:, 3:])  # earlier frames changed: later codes not
    frame_by_frame = torch.cat([model.encode(video[:, :, t:t + 1]) for t in range(6)], dim=1)
    assert torch.equal(frame_by_frame, codes)
    assert torch.allclose(model.decode(codes[:, 4:5]), model.decode(codes)[:, :, 4:5], atol=1e-5)
    # No attention along time and kernels one frame deep: fewer weights than the causal codec of that shape.
    assert model.encoder.res_stack[0].block[-1].attn_t is None
    assert model.encoder.convs[0].conv.kernel_size == (1, 4, 4)


def test_the_causal_codec_does_look_at_earlier_frames():
    """The check above can fail: a causal codec's later codes follow its earlier frames."""
    model = trained_looking(tiny_vqvae(causal=True, downsample=(1, 2, 2), sequence_length=6, n_codes=64))
    video = random_video((2, 3, 6, 8, 8), seed=1)
    other_past = torch.cat([random_video((2, 3, 3, 8, 8), seed=2), video[:, :, 3:]], dim=2)
    with torch.no_grad():
        latents, other_latents = model.quantizer_input(video), model.quantizer_input(other_past)
    assert (latents[:, :, 3:] - other_latents[:, :, 3:]).abs().max() > 1e-2


def test_configs_without_the_causal_field_load_as_the_reference_codec():
    from videogpt_core.models.config import config_from_dict

    config = config_from_dict(VQVAEConfig, dict(sequence_length=8, resolution=8, downsample=[2, 2, 2]))
    assert config.causal is False
    assert tiny_vqvae().encoder.convs[0].pad == (1, 1, 1, 1, 1, 1)
    assert tiny_vqvae(causal=True, downsample=(1, 2, 2)).encoder.convs[0].pad == (1, 1, 1, 1, 3, 0)


# ------------------------------------------------------------------------------------------------ codebook


def test_data_dependent_init_on_first_training_forward():
    codebook = Codebook(n_codes=4, embedding_dim=3, decay=1.0)  # decay 1 keeps the init visible
    z = torch.randn(1, 3, 2, 2, 2)  # 8 vectors >= 4 codes: no tiling, exact batch vectors
    flat = z.movedim(1, -1).reshape(-1, 3)

    codebook.eval()
    codebook(z)
    assert not codebook.initialized and torch.equal(codebook.N, torch.zeros(4))  # eval never initialises

    codebook.train()
    codebook(z)
    assert codebook.initialized
    assert torch.equal(codebook.N, torch.ones(4))
    matches = (codebook.embeddings[:, None, :] == flat[None]).all(-1)  # (codes, batch vectors)
    assert matches.any(1).all(), "every code must be one of the batch's vectors"
    assert matches.float().argmax(1).unique().numel() == 4, "codes must be distinct batch vectors"
    assert torch.allclose(codebook.z_avg, codebook.embeddings)

    # Initialised once: a second batch does not re-draw the codes (decay 1 freezes the EMA).
    first = codebook.embeddings.clone()
    codebook(torch.randn(1, 3, 2, 2, 2) + 5)
    assert torch.allclose(codebook.embeddings, first)


def test_data_dependent_init_tiles_a_small_batch_with_little_noise():
    codebook = Codebook(n_codes=8, embedding_dim=4, decay=1.0).train()
    z = torch.randn(1, 4, 1, 1, 2)  # two vectors for eight codes
    codebook(z)
    flat = z.movedim(1, -1).reshape(-1, 4)
    distance = torch.cdist(codebook.embeddings, flat).min(1).values
    assert (distance < 0.05).all()  # each code is a batch vector plus noise of std 0.01 / sqrt(4)
    assert (distance > 0).all()  # the noise separates the copies
    assert torch.unique(codebook.embeddings, dim=0).shape[0] == 8


def initialised_codebook(embeddings, N, z_avg) -> Codebook:
    codebook = Codebook(n_codes=len(embeddings), embedding_dim=len(embeddings[0]), decay=0.99)
    codebook.embeddings.copy_(torch.tensor(embeddings))
    codebook.N.copy_(torch.tensor(N))
    codebook.z_avg.copy_(torch.tensor(z_avg))
    return codebook


def as_z(vectors) -> torch.Tensor:
    """(n, D) vectors -> (1, D, 1, 1, n): one clip whose latents are those vectors."""
    return torch.tensor(vectors, dtype=torch.float32).t()[None, :, None, None, :]


def test_ema_update_matches_a_hand_computation():
    codebook = initialised_codebook(
        embeddings=[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]],
        N=[2.0, 3.0, 4.0],
        z_avg=[[0.5, 0.5], [30.0, 1.0], [1.0, 40.0]],
    ).train()
    vectors = [[0.1, 0.2], [9.0, 1.0], [11.0, -1.0], [-0.3, 0.1]]  # codes 0, 1, 1, 0; code 2 unused
    out = codebook(as_z(vectors))
    assert out["codes"].flatten().tolist() == [0, 1, 1, 0]

    counts = torch.tensor([2.0, 2.0, 0.0], dtype=torch.float64)
    sums = torch.tensor([[-0.2, 0.3], [20.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    N = 0.99 * torch.tensor([2.0, 3.0, 4.0], dtype=torch.float64) + 0.01 * counts
    z_avg = 0.99 * torch.tensor([[0.5, 0.5], [30.0, 1.0], [1.0, 40.0]], dtype=torch.float64) + 0.01 * sums
    n = N.sum()
    weights = (N + 1e-7) / (n + 3 * 1e-7) * n
    embeddings = z_avg / weights[:, None]
    assert (N >= 1).all()  # no restart in this case
    torch.testing.assert_close(codebook.N, N.float(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(codebook.z_avg, z_avg.float(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(codebook.embeddings, embeddings.float(), rtol=1e-6, atol=1e-6)

    # The quantised output and the commitment loss use the codes as they were BEFORE the update.
    old = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [0.0, 0.0]])
    assert torch.equal(out["quantized"][0, :, 0, 0].t(), old)
    expected_commitment = 0.25 * F.mse_loss(torch.tensor(vectors), old)
    assert torch.isclose(out["commitment_loss"], expected_commitment)


def test_dead_codes_are_restarted_from_the_batch_and_only_they():
    def run(seed: int) -> Codebook:
        codebook = initialised_codebook(
            embeddings=[[0.0, 0.0], [50.0, 50.0], [10.0, 0.0], [-50.0, 50.0]],
            N=[5.0, 0.5, 3.0, 0.2],  # codes 1 and 3 are dead (N < 1) and stay dead after the update
            z_avg=[[1.0, 1.0], [5.0, 5.0], [30.0, 0.0], [2.0, 2.0]],
        ).train()
        torch.manual_seed(seed)
        codebook(as_z([[0.1, 0.0], [0.0, 0.3], [9.0, 0.5], [11.0, 0.0], [0.2, -0.1]]))
        return codebook

    codebook = run(seed=7)
    batch = torch.tensor([[0.1, 0.0], [0.0, 0.3], [9.0, 0.5], [11.0, 0.0], [0.2, -0.1]])
    N = torch.tensor([0.99 * 5 + 0.01 * 3, 0.99 * 0.5, 0.99 * 3 + 0.01 * 2, 0.99 * 0.2])
    z_avg = torch.tensor([[0.99 + 0.01 * 0.3, 0.99 + 0.01 * 0.2], [4.95, 4.95], [29.7 + 0.2, 0.005],
                          [1.98, 1.98]])
    weights = (N + 1e-7) / (N.sum() + 4e-7) * N.sum()
    torch.testing.assert_close(codebook.N, N, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(codebook.z_avg, z_avg, rtol=1e-6, atol=1e-6)
    # Live codes keep the EMA value.
    torch.testing.assert_close(codebook.embeddings[[0, 2]], (z_avg / weights[:, None])[[0, 2]])
    # Dead codes become batch vectors (the batch has more vectors than codes: no noise).
    for dead in (1, 3):
        assert (codebook.embeddings[dead] == batch).all(1).any(), f"code {dead} is not a batch vector"
    # Seeded: the same seed restarts the same way.
    assert torch.equal(run(seed=7).embeddings, codebook.embeddings)


def test_eval_forward_and_encode_never_change_the_codebook():
    model = tiny_vqvae()
    video = random_video((2, 3, 4, 8, 8))
    model.train()
    model(video)  # initialise
    before = buffers(model.codebook)
    model.encode(video)  # training mode, but encode must not touch the codebook
    assert_buffers_unchanged(model.codebook, before)

    model.eval()
    before = buffers(model)
    model.encode(video)
    model(video)
    model.codebook(model.quantizer_input(video))
    assert_buffers_unchanged(model, before)


def test_encode_in_training_mode_changes_no_buffer_and_ignores_the_batch():
    """encode is inference: BatchNorm running statistics must not move and codes must not depend on what
    else is in the batch, whatever mode the model was left in (from_pretrained returns training mode)."""
    model = tiny_vqvae().train()
    video = random_video((2, 3, 4, 8, 8))
    before = buffers(model)
    codes = model.encode(video)
    assert_buffers_unchanged(model, before)
    alone = model.encode(video[:1])
    assert torch.equal(alone, codes[:1])


def test_perplexity_and_usage_for_known_assignments():
    codebook = initialised_codebook(
        embeddings=[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]], N=[1.0] * 4, z_avg=[[0.0, 0.0]] * 4,
    ).eval()
    cases = {
        (0, 0, 1, 1): (2.0, 0.5),
        (0, 1, 2, 3): (4.0, 1.0),
        (3, 3, 3, 3): (1.0, 0.25),
        (0, 0, 0, 2): (math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), 0.5),
    }
    for assignment, (perplexity, usage) in cases.items():
        out = codebook(as_z([codebook.embeddings[c].tolist() for c in assignment]))
        assert out["codes"].flatten().tolist() == list(assignment)
        assert out["perplexity"].item() == pytest.approx(perplexity, rel=1e-5)
        assert out["usage"].item() == pytest.approx(usage)


def test_nearest_is_the_squared_distance_argmin():
    codebook = Codebook(n_codes=16, embedding_dim=5)
    flat = torch.randn(40, 5)
    expected = torch.cdist(flat, codebook.embeddings).argmin(1)
    assert torch.equal(codebook.nearest(flat), expected)
    codes = expected.view(2, 4, 5, 1)
    assert torch.equal(codebook.lookup(codes), codebook.embeddings[codes].movedim(-1, 1))


# ------------------------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize("training", [False, True])
def test_straight_through_gradient_is_the_identity(training):
    codebook = Codebook(n_codes=6, embedding_dim=3).train(training)
    z = torch.randn(1, 3, 1, 2, 2)
    jacobian = torch.autograd.functional.jacobian(lambda x: codebook(x)["quantized"], z)
    assert torch.equal(jacobian.reshape(z.numel(), z.numel()), torch.eye(z.numel()))


def test_reconstruction_gradient_reaches_the_encoder_through_the_quantiser():
    model = tiny_vqvae(commitment_cost=0.0).eval()
    video = random_video((1, 3, 4, 8, 8))
    z = model.quantizer_input(video)
    z.retain_grad()
    quantized = model.codebook(z)["quantized"]
    quantized.retain_grad()
    loss = F.mse_loss(model.decoder(model.post_vq_conv(quantized)), video)
    loss.backward()
    assert z.grad.abs().sum() > 0
    assert torch.equal(z.grad, quantized.grad)  # d loss / d z == d loss / d quantized
    assert model.encoder.convs[0].conv.weight.grad.abs().sum() > 0
    assert model.codebook.embeddings.grad is None  # the codebook learns by EMA only


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("video, message", [
    (torch.zeros(3, 4, 8, 8), r"\(B, 3, T, H, W\)"),  # no batch axis
    (torch.zeros(1, 1, 4, 8, 8), r"\(B, 3, T, H, W\)"),  # grey
    (torch.zeros(1, 4, 4, 8, 8), r"\(B, 3, T, H, W\)"),  # RGBA
    (torch.zeros(1, 4, 8, 8, 3), r"\(B, 3, T, H, W\)"),  # channels last
    (torch.zeros(1, 3, 4, 8, 8, dtype=torch.uint8), "float"),
    (torch.full((1, 3, 4, 8, 8), 0.9), r"\[-0.5, 0.5\]"),  # [0, 1] video
    (torch.full((1, 3, 4, 8, 8), 200.0), r"\[-0.5, 0.5\]"),  # [0, 255] video
    (torch.zeros(1, 3, 3, 8, 8), "divisible"),
    (torch.zeros(1, 3, 4, 8, 7), "divisible"),
    (torch.zeros(1, 3, 4, 8, 8).numpy(), r"\(B, 3, T, H, W\)"),
])
def test_bad_video_raises_a_clear_error(video, message):
    model = tiny_vqvae().eval()
    with pytest.raises(ValueError, match=message):
        model.encode(video)
    with pytest.raises(ValueError, match=message):
        model(video)


@pytest.mark.parametrize("codes, message", [
    (torch.full((1, 2, 4, 4), 16), r"\[0, 16\)"),
    (torch.full((1, 2, 4, 4), -1), r"\[0, 16\)"),
    (torch.zeros(2, 4, 4, dtype=torch.long), r"\(B, t, h, w\)"),
    (torch.zeros(1, 2, 4, 4), "integer"),
])
def test_bad_codes_raise_a_clear_error(codes, message):
    with pytest.raises(ValueError, match=message):
        tiny_vqvae().decode(codes)


# ------------------------------------------------------------------------------------------------ training


def test_overfits_a_tiny_batch():
    model = tiny_vqvae().train()
    video = random_video((2, 3, 4, 8, 8), seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(40):
        out = model(video)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["recon_loss"].item())
    assert losses[-1] < losses[0] / 4, losses[::8]
