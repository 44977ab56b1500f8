"""Tests for the VideoGPT prior: shapes, causality, conditioning (class, per-step actions, frames), condition
dropout, the cached decoding path against teacher forcing, input validation and a tiny overfit."""
from __future__ import annotations

import math

import pytest
import torch

from videogpt_core import VQVAE, VideoGPT, VideoGPTConfig
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.prior import PriorLayerNorm

LATENT = (2, 2, 3)  # non-cubic, so a wrong raster order shows
SEQUENCE_LENGTH = 4  # two frames per latent step
N_CODES = 16
BASE = dict(latent_shape=LATENT, n_codes=N_CODES, embedding_dim=8, sequence_length=SEQUENCE_LENGTH, resolution=8,
            hidden_dim=24, n_heads=2, n_layers=2, dropout=0.0, attn_dropout=0.0)
FRAMES = dict(n_cond_frames=1, frame_encoder_widths=(4, 4, 8, 6), frame_encoder_blocks=(1, 1, 1, 1))
KINDS = {
    "unconditional": {},
    "class": dict(n_classes=3),
    "actions": dict(action_dim=2, action_embed_dim=8),
    "frames": FRAMES,
    "all": dict(n_classes=3, action_dim=2, action_embed_dim=8, **FRAMES),
}


def make_prior(kind: str, seed: int = 0, trained_output: bool = True, **overrides) -> VideoGPT:
    """A tiny prior; `trained_output` replaces the zero-initialised fc_out so logits depend on the input."""
    torch.manual_seed(seed)
    model = VideoGPT(**{**BASE, **KINDS[kind], **overrides})
    model.codebook.normal_()
    if trained_output:
        torch.nn.init.normal_(model.fc_out.weight, std=0.5)
    return model.eval()


def conditions(model: VideoGPT, batch: int, seed: int = 1) -> dict:
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    cond = {}
    if cfg.n_classes:
        cond["labels"] = torch.randint(0, cfg.n_classes, (batch,), generator=g)
    if cfg.action_dim:
        cond["actions"] = torch.randn(batch, cfg.sequence_length, cfg.action_dim, generator=g)
    if cfg.n_cond_frames:
        cond["frames"] = torch.rand(batch, 3, cfg.n_cond_frames, cfg.resolution, cfg.resolution, generator=g) - 0.5
    return cond


def random_codes(batch: int, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, N_CODES, (batch, *LATENT), generator=torch.Generator().manual_seed(seed))


def cached_logits(model: VideoGPT, codes: torch.Tensor, prefix_length: int = 0, drop=None, **cond) -> torch.Tensor:
    """Logits (B, L - prefix_length, n_codes) of every position from prefix_length on, via the KV cache and
    teacher forcing the given codes one token at a time."""
    flat = codes.flatten(1)
    state = model.start_decoding(codes.shape[0], drop=drop, conditions=Conditions(**cond))
    out = [model.prefill(state, flat[:, :prefix_length])]
    for position in range(prefix_length + 1, flat.shape[1]):
        out.append(model.decode_step(state, flat[:, position - 1], position))
    return torch.stack(out, dim=1)


# ------------------------------------------------------------------------------------------------ shapes, loss


@pytest.mark.parametrize("kind", KINDS)
def test_logits_shape(kind):
    model = make_prior(kind)
    logits = model(random_codes(3), **conditions(model, 3))
    assert logits.shape == (3, *LATENT, N_CODES) and logits.dtype == torch.float32


@pytest.mark.parametrize("kind", KINDS)
def test_initial_loss_is_log_n_codes_and_bits_are_nats_over_ln2(kind):
    model = make_prior(kind, trained_output=False)  # as constructed: fc_out is zero
    assert torch.equal(model.fc_out.weight, torch.zeros_like(model.fc_out.weight))
    out = model.loss(random_codes(2), **conditions(model, 2))
    assert out["loss"].item() == pytest.approx(math.log(N_CODES), abs=1e-6)
    assert out["bits_per_token"].item() == pytest.approx(math.log2(N_CODES), abs=1e-6)

    trained = make_prior(kind)
    out = trained.loss(random_codes(2), **conditions(trained, 2))
    assert out["bits_per_token"].item() == pytest.approx(out["loss"].item() / math.log(2), rel=1e-6)
    assert out["loss"].requires_grad and not out["bits_per_token"].requires_grad


def test_loss_is_the_mean_cross_entropy_of_the_logits():
    model = make_prior("class")
    codes, cond = random_codes(2), conditions(model, 2)
    logits = model(codes, **cond)
    expected = -torch.log_softmax(logits, -1).gather(-1, codes[..., None]).mean()
    assert model.loss(codes, **cond)["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


# ------------------------------------------------------------------------------------------------ causality


@pytest.mark.parametrize("kind", KINDS)
def test_changing_a_code_changes_no_logit_at_or_before_it(kind):
    model = make_prior(kind)
    codes, cond = random_codes(2), conditions(model, 2)
    length = math.prod(LATENT)
    with torch.no_grad():
        base = model(codes, **cond).flatten(1, 3)  # (B, L, n_codes) in raster order
        for i in range(length):
            changed = codes.flatten(1).clone()
            changed[:, i] = (changed[:, i] + 1) % N_CODES
            logits = model(changed.view_as(codes), **cond).flatten(1, 3)
            assert torch.allclose(logits[:, : i + 1], base[:, : i + 1], atol=1e-6, rtol=0), f"position {i}"
            if i + 1 < length:
                assert not torch.allclose(logits[:, i + 1], base[:, i + 1]), f"code {i} is ignored"


# ------------------------------------------------------------------------------------------------ conditioning


@pytest.mark.parametrize("kind", ["actions", "all"])
def test_actions_condition_per_latent_step(kind):
    model = make_prior(kind)
    codes, cond = random_codes(2), conditions(model, 2)
    frames_per_step = model.config.frames_per_latent
    with torch.no_grad():
        base = model(codes, **cond)
        for step in range(LATENT[0]):
            actions = cond["actions"].clone()
            actions[:, step * frames_per_step:(step + 1) * frames_per_step] += 1.0
            logits = model(codes, **{**cond, "actions": actions})
            assert torch.allclose(logits[:, :step], base[:, :step], atol=1e-6, rtol=0), f"step {step}"
            assert not torch.allclose(logits[:, step], base[:, step]), f"actions of step {step} are ignored"


@pytest.mark.parametrize("kind, key, other", [
    ("class", "labels", lambda c: (c + 1) % 3),
    ("frames", "frames", lambda f: -f),
    ("all", "labels", lambda c: (c + 1) % 3),
    ("all", "frames", lambda f: -f),
])
def test_each_condition_changes_only_its_own_sample(kind, key, other):
    model = make_prior(kind)
    codes, cond = random_codes(2), conditions(model, 2)
    changed = cond[key].clone()
    changed[1] = other(changed[1])
    with torch.no_grad():
        base = model(codes, **cond)
        logits = model(codes, **{**cond, key: changed})
    assert torch.allclose(logits[0], base[0], atol=1e-6)
    assert not torch.allclose(logits[1], base[1])


@pytest.mark.parametrize("kind", ["class", "actions", "all"])
def test_cond_drop_prob_zeroes_the_condition_in_training_only(kind):
    model = make_prior(kind, cond_drop_prob=1.0)
    codes = random_codes(2)
    cond, other = conditions(model, 2, seed=1), conditions(model, 2, seed=5)
    if "labels" in other:
        other["labels"] = (cond["labels"] + 1) % 3
    if "frames" in other:
        other["frames"] = cond["frames"]  # frames are not part of the dropped condition
    drop_all = torch.ones(2, dtype=torch.bool)
    assert torch.equal(model.condition_vector(Conditions(labels=cond.get("labels"), actions=cond.get("actions")), 2,
                                              drop=drop_all),
                       torch.zeros(2, LATENT[0], model.config.cond_dim))

    model.train()  # dropout probabilities are 0: only the condition dropout acts
    with torch.no_grad():
        dropped = model(codes, **cond)
        assert torch.equal(dropped, model(codes, **other))
        # ... and equals the model run with an explicitly zeroed condition (the guidance branch).
        model.eval()
        unconditional = cached_logits(model, codes, drop=drop_all, **cond)
        assert torch.allclose(dropped.flatten(1, 3), unconditional, atol=1e-5)
        assert not torch.allclose(model(codes, **cond), model(codes, **other))


def test_cond_drop_prob_drops_a_fraction_of_the_batch():
    model = make_prior("class", cond_drop_prob=0.5).train()
    batch = 32
    codes = random_codes(1).expand(batch, *LATENT)
    with torch.no_grad():
        logits = model(codes, labels=torch.full((batch,), 2))
        kept = model.eval()(codes[:1], labels=torch.tensor([2]))
        dropped = cached_logits(model, codes[:1], drop=torch.ones(1, dtype=torch.bool), labels=torch.tensor([2]))
    is_kept = torch.tensor([torch.allclose(row, kept[0], atol=1e-5) for row in logits])
    is_dropped = torch.tensor([torch.allclose(row.flatten(0, 2), dropped[0], atol=1e-5) for row in logits])
    assert (is_kept ^ is_dropped).all()
    assert 4 <= int(is_dropped.sum()) <= 28


# ------------------------------------------------------------------------------------------------ cached decoding


@pytest.mark.parametrize("kind", KINDS)
def test_cached_decoding_equals_teacher_forcing(kind):
    model = make_prior(kind)
    codes, cond = random_codes(2), conditions(model, 2)
    with torch.no_grad():
        teacher_forced = model(codes, **cond).flatten(1, 3)
    assert teacher_forced.abs().max() > 0.5
    assert (cached_logits(model, codes, **cond) - teacher_forced).abs().max() < 1e-4
    for prefix_length in (1, 5, math.prod(LATENT) - 1):
        cached = cached_logits(model, codes, prefix_length=prefix_length, **cond)
        assert (cached - teacher_forced[:, prefix_length:]).abs().max() < 1e-4, prefix_length


def test_prefill_rejects_a_prefix_that_fills_the_grid():
    model = make_prior("unconditional")
    state = model.start_decoding(1)
    with pytest.raises(ValueError, match="nothing to sample"):
        model.prefill(state, random_codes(1).flatten(1))


@pytest.mark.parametrize("prefix, message", [
    (torch.zeros(2, 3, dtype=torch.long), r"shape \(1, n\)"),  # batch 2 for a state of batch 1
    (torch.zeros(1, 3), "integer codes"),
    (torch.full((1, 3), N_CODES), r"codes must lie in \[0, "),
    (torch.full((1, 3), -1), r"codes must lie in \[0, "),
])
def test_prefill_rejects_bad_prefixes(prefix, message):
    model = make_prior("unconditional")
    with pytest.raises(ValueError, match=message):
        model.prefill(model.start_decoding(1), prefix)


def test_decode_step_rejects_a_wrong_batch_or_position():
    model = make_prior("unconditional")
    state = model.start_decoding(2)
    model.prefill(state)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        model.decode_step(state, torch.zeros(3, dtype=torch.long), 1)
    for position in (0, math.prod(LATENT)):
        with pytest.raises(ValueError, match="position must lie in"):
            model.decode_step(state, torch.zeros(2, dtype=torch.long), position)
    assert model.decode_step(state, torch.zeros(2, dtype=torch.long), 1).shape == (2, N_CODES)


@pytest.mark.parametrize("kind", KINDS)
def test_verify_scores_several_tokens_as_teacher_forcing_does(kind):
    model = make_prior(kind)
    codes, cond = random_codes(2), conditions(model, 2)
    flat = codes.flatten(1)
    length = flat.shape[1]
    with torch.no_grad():
        teacher_forced = model(codes, **cond).flatten(1, 3)
    # Across a time-slice boundary (6 positions per slice), from the first position, up to the last one.
    for position, k in [(1, 4), (4, 5), (7, 1), (length - 3, 3), (1, length - 1)]:
        state = model.start_decoding(2, conditions=Conditions(**cond))
        model.prefill(state, flat[:, : position - 1])
        scored = model.verify(state, flat[:, position - 1: position - 1 + k], position)
        assert scored.shape == (2, k, N_CODES)
        difference = (scored - teacher_forced[:, position: position + k]).abs().max().item()
        assert difference < 1e-4, (position, k, difference)


def test_verify_needs_no_rollback_after_rejected_proposals():
    model = make_prior("all")
    codes, cond = random_codes(2), conditions(model, 2)
    flat = codes.flatten(1)
    with torch.no_grad():
        teacher_forced = model(codes, **cond).flatten(1, 3)
    state = model.start_decoding(2, conditions=Conditions(**cond))
    model.prefill(state, flat[:, :3])
    wrong = (flat[:, 3:8] + 1) % N_CODES
    wrong[:, 0] = flat[:, 3]  # the drawn code is right, the proposals after it wrong
    model.verify(state, wrong, 4)
    # Accept one proposal's position (4), then continue from there: the stale entries get overwritten.
    after = [model.decode_step(state, flat[:, position - 1], position) for position in (5, 6)]
    after.append(model.verify(state, flat[:, 6:9], 7)[:, -1])
    expected = teacher_forced[:, [5, 6, 9]]
    assert (torch.stack(after, dim=1) - expected).abs().max() < 1e-4


def test_verify_rejects_bad_positions_and_codes():
    model = make_prior("unconditional")
    state = model.start_decoding(2)
    length = math.prod(LATENT)
    codes = torch.zeros(2, 3, dtype=torch.long)
    for position in (0, length - 2, 1.0):
        with pytest.raises(ValueError, match="verify needs"):
            model.verify(state, codes, position)
    with pytest.raises(ValueError, match=r"shape \(2, n\)"):
        model.verify(state, codes[:1], 1)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, "):
        model.verify(state, codes + N_CODES, 1)
    assert model.verify(state, codes, length - 3).shape == (2, 3, N_CODES)


def test_decoding_copy_follows_the_weights_in_place_and_leaves_the_state_dict_alone():
    model = make_prior("frames")
    keys = list(model.state_dict())
    codes, cond = random_codes(1), conditions(model, 1)
    cached_logits(model, codes, **cond)
    decoder = model.decoders[None]
    addresses = [t.data_ptr() for t in decoder.tensors()]
    with torch.no_grad():  # as a training step or load_state_dict would
        model.blocks[1].fc_block[2].weight.mul_(-1.5)
        model.fc_in.weight.add_(0.1)
        teacher_forced = model(codes, **cond).flatten(1, 3)
    assert (cached_logits(model, codes, **cond) - teacher_forced).abs().max() < 1e-4
    assert model.decoders[None] is decoder and [t.data_ptr() for t in decoder.tensors()] == addresses
    assert list(model.state_dict()) == keys and not any("qkv" in key for key in keys)


# ------------------------------------------------------------------------------------------------ building blocks


def test_layer_norm_uses_the_reference_epsilon_outside_the_rsqrt():
    x = torch.tensor([[1.0, 1.001, 0.999, 1.0005]])  # tiny variance: where the epsilon placement shows
    g, b = torch.tensor([1.0, 2.0, 0.5, 1.0]), torch.tensor([0.0, 0.1, 0.0, -0.1])
    centered = x - x.mean(-1, keepdim=True)
    expected = centered * (1e-5 + centered.square().mean(-1, keepdim=True).rsqrt()) * g + b
    torch.testing.assert_close(PriorLayerNorm.normalize(x, g, b), expected)
    standard = torch.nn.functional.layer_norm(x, (4,), g, b, eps=1e-5)
    assert not torch.allclose(expected, standard, atol=1e-3)


def test_for_vqvae_copies_the_codebook_and_dimensions():
    vqvae = VQVAE(embedding_dim=8, n_codes=N_CODES, n_hiddens=16, n_res_layers=1, downsample=(2, 4, 4),
                  sequence_length=4, resolution=8)
    prior = VideoGPT.for_vqvae(vqvae, hidden_dim=24, n_heads=2, n_layers=1)
    assert prior.latent_shape == vqvae.latent_shape == (2, 2, 2)
    assert prior.n_codes == N_CODES and prior.config.embedding_dim == 8
    assert prior.config.sequence_length == 4 and prior.config.resolution == 8
    assert torch.equal(prior.codebook, vqvae.codebook.embeddings)
    assert prior.codebook.data_ptr() != vqvae.codebook.embeddings.data_ptr()  # a copy, frozen


@pytest.mark.parametrize("overrides, message", [
    (dict(hidden_dim=20), "divisible by 3"),
    (dict(hidden_dim=27, n_heads=2), "n_heads"),
    (dict(sequence_length=5), "multiple"),
    (dict(n_classes=2, class_names=["a"]), "class_names"),
    (dict(n_cond_frames=1, frame_encoder_widths=(4, 4, 8, 8)), "divide by 3"),
    (dict(n_cond_frames=1, resolution=6), "divisible by 4"),
])
def test_bad_configs_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        VideoGPTConfig(**{**BASE, **overrides})


# ------------------------------------------------------------------------------------------------ bad input


def bad_input_cases():
    frames = torch.zeros(2, 3, 1, 8, 8)
    actions = torch.zeros(2, SEQUENCE_LENGTH, 2)
    return [
        ("unconditional", dict(codes=torch.zeros(2, 2, 2, 2, dtype=torch.long)), r"\(B, 2, 2, 3\)"),
        ("unconditional", dict(codes=torch.zeros(2, *LATENT)), "integer"),
        ("unconditional", dict(codes=torch.full((2, *LATENT), N_CODES)), r"\[0, 16\)"),
        ("unconditional", dict(codes=torch.full((2, *LATENT), -1)), r"\[0, 16\)"),
        ("unconditional", dict(labels=torch.tensor([0, 1])), "not class-conditional"),
        ("unconditional", dict(actions=actions), "not action-conditional"),
        ("unconditional", dict(frames=frames), "not frame-conditional"),
        ("class", {}, "labels .* required"),
        ("class", dict(labels=torch.tensor([0, 3])), r"\[0, 3\)"),
        ("class", dict(labels=torch.tensor([-1, 0])), r"\[0, 3\)"),
        ("class", dict(labels=torch.tensor([0])), r"shape \(2,\)"),
        ("class", dict(labels=torch.tensor([0.0, 1.0])), "integer"),
        ("actions", {}, "actions .* required"),
        ("actions", dict(actions=torch.zeros(2, SEQUENCE_LENGTH - 1, 2)), "one row per frame"),
        ("actions", dict(actions=torch.zeros(2, SEQUENCE_LENGTH, 3)), "one row per frame"),
        ("actions", dict(actions=torch.full((2, SEQUENCE_LENGTH, 2), float("nan"))), "NaN"),
        ("frames", {}, "frames .* required"),
        ("frames", dict(frames=torch.zeros(2, 3, 1, 16, 16)), "float tensor"),
        ("frames", dict(frames=torch.zeros(2, 1, 1, 8, 8)), "float tensor"),
        ("frames", dict(frames=torch.zeros(2, 3, 0, 8, 8)), "float tensor"),
        ("frames", dict(frames=torch.zeros(2, 3, 1, 8, 8, dtype=torch.uint8)), "float tensor"),
        ("frames", dict(frames=torch.full((2, 3, 1, 8, 8), 0.9)), r"\[-0.5, 0.5\]"),
    ]


@pytest.mark.parametrize("kind, inputs, message", bad_input_cases())
def test_bad_input_raises_a_clear_value_error(kind, inputs, message):
    model = make_prior(kind)
    with pytest.raises(ValueError, match=message):
        model(**{"codes": random_codes(2), **inputs})
    if "codes" not in inputs:  # a bad condition is refused by the sampling entry point too
        with pytest.raises(ValueError, match=message):
            model.start_decoding(2, conditions=Conditions(**inputs))


def test_frames_may_hold_more_than_the_conditioning_frames():
    model = make_prior("frames")
    clip = torch.rand(2, 3, SEQUENCE_LENGTH, 8, 8) - 0.5
    with torch.no_grad():
        assert torch.equal(model(random_codes(2), frames=clip), model(random_codes(2), frames=clip[:, :, :1]))


# ------------------------------------------------------------------------------------------------ training


def test_overfits_a_tiny_batch():
    model = make_prior("class", trained_output=False).train()
    codes, cond = random_codes(2, seed=3), conditions(model, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model.loss(codes, **cond)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(N_CODES), abs=1e-6)
    assert losses[-1] < losses[0] / 8, losses[::6]
    assert torch.equal(model.codebook, make_prior("class").codebook)  # the codebook is a frozen buffer



def test_the_frame_encoder_runs_one_frame_as_a_2d_convolution_and_stays_finite_in_bf16():
    """One conditioning frame: the same features as the plain 3D convolutions, and finite under CPU bf16
    autocast (oneDNN's bf16 Conv3d on a one-frame, three-channel input returned NaN on an AVX-512-BF16 CPU)."""
    from videogpt_core.models.frame_encoder import FrameConv3d, FrameEncoder

    torch.manual_seed(0)
    encoder = FrameEncoder((8, 8, 8, 12), (1, 1, 1, 1)).eval()
    frames = torch.rand(8, 3, 1, 64, 64) - 0.5
    convs = [m for m in encoder.modules() if isinstance(m, FrameConv3d)]
    assert len(convs) > 5
    with torch.no_grad():
        features = encoder(frames)
        plain = torch.nn.Conv3d.forward
        as_3d = {conv: conv.forward for conv in convs}
        for conv in convs:  # the same modules through the 3D path
            conv.forward = plain.__get__(conv)
        reference = encoder(frames)
        for conv, forward in as_3d.items():
            conv.forward = forward
        assert torch.allclose(features, reference, atol=1e-5)
        with torch.autocast("cpu", torch.bfloat16):
            assert torch.isfinite(encoder(frames)).all()
