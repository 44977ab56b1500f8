"""The cached decoder and the sampler: cached logits equal the teacher-forced forward, filters keep what they
promise, draws follow the probabilities, and guidance mixes the conditional and unconditional models."""
from __future__ import annotations

import math

import pytest
import torch

from tiny_models import (CONDITIONINGS, greedy_codes, random_inputs, tiny_prior, tiny_vqvae,
                         unconditional_twin)
from videogpt_core.sampling import SamplingOptions, draw, filter_logits, generate_codes


@pytest.fixture(scope="module")
def vqvae():
    return tiny_vqvae()


def final_codes(prior, batch, seed, **kwargs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    last = None
    for last, _ in generate_codes(prior, batch, generator=generator, **kwargs):
        pass
    return last.clone()


# ---- the KV cache ------------------------------------------------------------------------------------


@pytest.mark.parametrize("conditioning", list(CONDITIONINGS))
@pytest.mark.parametrize("static", [False, True], ids=["int-position", "tensor-position"])
def test_cached_logits_equal_teacher_forced_forward(vqvae, conditioning, static):
    prior = tiny_prior(vqvae, conditioning)
    inputs = random_inputs(prior, batch=2)
    codes = torch.randint(0, prior.n_codes, (2, *prior.latent_shape), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = prior(codes, **inputs).flatten(1, 3)  # (B, L, n_codes)
    flat = codes.flatten(1)
    length = flat.shape[1]
    # Prefixes: none, one token, inside the first slice, exactly one slice, all but the last token.
    for n_known in (0, 1, 5, 16, length - 1):
        # static: the state kept for CUDA graphs, refilled for each prefix (its caches hold the last one's).
        state = prior.start_decoding(2, static=static, **inputs)
        logits = [prior.prefill(state, flat[:, :n_known])]
        for position in range(n_known + 1, length):
            where = torch.tensor([position]) if static else position
            logits.append(prior.decode_step(state, flat[:, position - 1], where))
        state.release()
        cached = torch.stack(logits, dim=1)
        difference = (cached - full[:, n_known:]).abs().max().item()
        assert difference < 1e-4, f"prefix {n_known}: cached logits differ by {difference}"


def test_cached_logits_depend_on_the_condition(vqvae):
    # Guards the test above against a condition that silently does nothing.
    prior = tiny_prior(vqvae, "all")
    inputs = random_inputs(prior, batch=2, seed=2)
    other = random_inputs(prior, batch=2, seed=5)
    codes = torch.zeros(2, *prior.latent_shape, dtype=torch.long)
    with torch.no_grad():
        for name in inputs:
            changed = dict(inputs, **{name: other[name]})
            assert (prior(codes, **inputs) - prior(codes, **changed)).abs().max() > 1e-2, name


@pytest.mark.parametrize("conditioning", ["none", "all"])
def test_top_k_1_equals_greedy_teacher_forced_decoding(vqvae, conditioning):
    # Greedy decoding of a random model often repeats one code; this seed's greedy sequence varies.
    prior = tiny_prior(vqvae, conditioning, seed=4)
    inputs = random_inputs(prior, batch=2)
    expected = greedy_codes(prior, 2, **inputs)
    sampled = final_codes(prior, 2, seed=7, options=SamplingOptions(top_k=1), **inputs)
    assert torch.equal(sampled, expected)
    assert len(expected.unique()) > 2  # a real sequence, not one repeated code


def test_top_k_1_with_prefix_keeps_the_prefix_and_continues_greedily(vqvae):
    prior = tiny_prior(vqvae)
    prefix = torch.randint(0, prior.n_codes, (2, 20), generator=torch.Generator().manual_seed(4))
    expected = greedy_codes(prior, 2, prefix=prefix)
    sampled = final_codes(prior, 2, seed=0, prefix=prefix, options=SamplingOptions(top_k=1))
    assert torch.equal(sampled.flatten(1)[:, :20], prefix)
    assert torch.equal(sampled, expected)


def test_static_position_loop_samples_the_same_codes(vqvae):
    # The loop a compiled pipeline runs (position tensors) draws exactly what the eager loop draws.
    prior = tiny_prior(vqvae, "class")
    inputs = random_inputs(prior, batch=2)
    eager = final_codes(prior, 2, seed=11, **inputs)
    prior.static_decode = True
    try:
        static = final_codes(prior, 2, seed=11, **inputs)
    finally:
        del prior.static_decode
    assert torch.equal(eager, static)


def test_static_decoding_keeps_one_state_per_shape_for_one_generation_at_a_time(vqvae):
    # A CUDA graph is recorded on the state's addresses: each generation must decode in the same tensors,
    # refilled with its own inputs, and two generations at once must not share them.
    prior = tiny_prior(vqvae, "all")
    inputs, other = random_inputs(prior, batch=2, seed=2), random_inputs(prior, batch=2, seed=5)
    first = prior.start_decoding(2, static=True, **inputs)
    addresses = [t.data_ptr() for t in first.tensors()]
    weights = {p.data_ptr() for p in prior.parameters()}
    # Copies, not the model's weights: both the state and the decoding copy's layouts.
    assert not (set(addresses) | {t.data_ptr() for t in first.decoder.tensors()}) & weights
    busy = prior.start_decoding(2, static=True, **inputs)
    assert busy is not first and not set(addresses) & {t.data_ptr() for t in busy.tensors()}
    assert busy.decoder is first.decoder  # one decoding copy per weight format, shared
    first.release()
    again = prior.start_decoding(2, static=True, **other)
    assert again is first and [t.data_ptr() for t in again.tensors()] == addresses
    fresh = prior.start_decoding(2, **other)
    assert all(torch.equal(a, b) for a, b in zip(again.tensors(), fresh.tensors(), strict=True))
    single = prior.start_decoding(1, static=True, **random_inputs(prior, batch=1))
    assert single is not first and single is not busy
    with pytest.raises(ValueError, match="quantize"):
        prior.start_decoding(1, static=True, quantize="int8")
    assert prior.double()._static_states == {} and prior.float()._static_states == {}  # moved: dropped
    assert prior._decoders == {}

    # The sampling loop gives its state back when it finishes and when it is stopped early.
    prior.static_decode = True
    try:
        slice_len = prior.latent_shape[1] * prior.latent_shape[2]
        for prefix in (None, torch.zeros(2, slice_len, dtype=torch.long)):  # stopped in a sampled / given slice
            steps = generate_codes(prior, 2, generator=torch.Generator().manual_seed(0), prefix=prefix, **inputs)
            next(steps)
            assert sum(state.in_use for states in prior._static_states.values() for state in states) == 1
            steps.close()
            assert not any(state.in_use for states in prior._static_states.values() for state in states)
    finally:
        del prior.static_decode


def test_generate_codes_yields_once_per_slice_and_fills_slices_in_order(vqvae):
    prior = tiny_prior(vqvae)
    t = prior.latent_shape[0]
    updates = [(codes.clone(), done) for codes, done in
               generate_codes(prior, 1, generator=torch.Generator().manual_seed(0))]
    assert [done for _, done in updates] == list(range(1, t + 1))
    final = updates[-1][0]
    for codes, done in updates:
        assert torch.equal(codes[:, :done], final[:, :done])


def test_same_seed_same_codes_other_seed_other_codes(vqvae):
    prior = tiny_prior(vqvae)
    first = final_codes(prior, 2, seed=5)
    assert torch.equal(first, final_codes(prior, 2, seed=5))
    assert not torch.equal(first, final_codes(prior, 2, seed=6))


# ---- filters and draws -------------------------------------------------------------------------------


def test_temperature_divides_the_logits():
    logits = torch.tensor([[2.0, 1.0, -1.0, 0.5]])
    for temperature in (0.5, 1.0, 3.0):
        filtered = filter_logits(logits, temperature=temperature)
        torch.testing.assert_close(filtered, logits / temperature)
    # Low temperature sharpens, high temperature flattens.
    assert filter_logits(logits, 0.5).softmax(-1).max() > logits.softmax(-1).max() > \
        filter_logits(logits, 3.0).softmax(-1).max()


@pytest.mark.parametrize("k", [1, 2, 5, 9, 20])
def test_top_k_keeps_exactly_the_k_largest(k):
    logits = torch.randn(3, 9, generator=torch.Generator().manual_seed(k))
    filtered = filter_logits(logits, top_k=k)
    kept = torch.isfinite(filtered)
    assert (kept.sum(-1) == min(k, 9)).all()
    expected = torch.zeros_like(kept).scatter(-1, logits.topk(min(k, 9), dim=-1).indices, True)
    assert torch.equal(kept, expected)
    torch.testing.assert_close(filtered[kept], logits[kept])


def test_top_p_keeps_the_smallest_set_reaching_p():
    # Probabilities 0.5, 0.3, 0.15, 0.05, given in a shuffled order.
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])
    logits = probs.log()[None]
    cases = {0.2: [1], 0.45: [1], 0.6: [1, 3], 0.79: [1, 3], 0.81: [0, 1, 3], 0.9: [0, 1, 3],
             0.96: [0, 1, 2, 3], 1.0: [0, 1, 2, 3]}
    for p, expected in cases.items():
        kept = torch.isfinite(filter_logits(logits, top_p=p))[0]
        assert kept.nonzero().flatten().tolist() == expected, p
    # The most likely code always stays, however small p is.
    assert torch.isfinite(filter_logits(logits, top_p=1e-6)).sum() == 1


def test_top_k_then_top_p_then_renormalised():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    filtered = filter_logits(logits, temperature=1.0, top_k=3, top_p=0.7)
    probs = filtered.softmax(-1)[0]
    top3 = logits[0, :3].softmax(-1)
    assert top3[0] < 0.7 <= top3[0] + top3[1]  # so top-p keeps exactly two of the three
    torch.testing.assert_close(probs[:2], top3[:2] / top3[:2].sum())
    assert (probs[2:] == 0).all()


def test_draw_frequencies_match_probabilities():
    probs = torch.tensor([0.4, 0.25, 0.2, 0.1, 0.05, 0.0])
    n = 40_000
    logits = probs.log().expand(n, -1)  # log(0) = -inf: a filtered-out code
    codes = draw(logits, torch.Generator().manual_seed(123))
    counts = torch.bincount(codes, minlength=6).double()
    assert counts[5] == 0
    expected = probs[:5].double() * n
    chi_square = ((counts[:5] - expected) ** 2 / expected).sum().item()
    assert chi_square < 18.5  # the 0.1% critical value for 4 degrees of freedom


def test_draw_is_reproducible_with_a_seed_and_needs_no_host_sync():
    logits = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    a = draw(logits, torch.Generator().manual_seed(1))
    assert torch.equal(a, draw(logits, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, draw(logits, torch.Generator().manual_seed(2)))
    assert a.dtype == torch.long and a.shape == (8,)


# ---- classifier-free guidance ------------------------------------------------------------------------


class AlwaysGuided(SamplingOptions):
    """Forces the doubled-batch guidance path even at cfg_scale = 1 (which otherwise short-cuts)."""

    @property
    def guided(self) -> bool:
        return True


@pytest.mark.parametrize("conditioning", ["class", "actions"])
def test_cfg_scale_1_equals_no_guidance(vqvae, conditioning):
    prior = tiny_prior(vqvae, conditioning)
    inputs = random_inputs(prior, batch=2)
    plain = final_codes(prior, 2, seed=3, **inputs)
    assert torch.equal(final_codes(prior, 2, seed=3, options=SamplingOptions(cfg_scale=1.0), **inputs), plain)
    assert torch.equal(final_codes(prior, 2, seed=3, options=AlwaysGuided(cfg_scale=1.0), **inputs), plain)


@pytest.mark.parametrize("conditioning", ["class", "actions"])
def test_cfg_scale_0_equals_the_unconditional_model(vqvae, conditioning):
    prior = tiny_prior(vqvae, conditioning)
    inputs = random_inputs(prior, batch=2)
    unconditional = final_codes(unconditional_twin(prior), 2, seed=3)
    guided = final_codes(prior, 2, seed=3, options=SamplingOptions(cfg_scale=0.0), **inputs)
    assert torch.equal(guided, unconditional)
    assert not torch.equal(final_codes(prior, 2, seed=3, **inputs), unconditional)


@pytest.mark.parametrize("conditioning", ["class", "actions", "all"])
def test_guided_greedy_follows_the_mixed_logits(vqvae, conditioning):
    # argmax of uncond + s * (cond - uncond), both from the teacher-forced forward of the growing sequence.
    scale = 3.0
    prior = tiny_prior(vqvae, conditioning)
    twin = unconditional_twin(prior)
    inputs = random_inputs(prior, batch=2)
    twin_inputs = {k: v for k, v in inputs.items() if k == "frames"}  # frames are not dropped by guidance
    t, h, w = prior.latent_shape
    expected = torch.zeros(2, t * h * w, dtype=torch.long)
    with torch.no_grad():
        for position in range(t * h * w):
            grid = expected.view(2, t, h, w)
            cond = prior(grid, **inputs).flatten(1, 3)[:, position]
            uncond = twin(grid, **twin_inputs).flatten(1, 3)[:, position]
            expected[:, position] = (uncond + scale * (cond - uncond)).argmax(-1)
    sampled = final_codes(prior, 2, seed=0, options=SamplingOptions(top_k=1, cfg_scale=scale), **inputs)
    assert torch.equal(sampled, expected.view(2, t, h, w))
    assert not torch.equal(sampled, greedy_codes(prior, 2, **inputs))


# ---- option checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("options, name", [
    (dict(temperature=0), "temperature"), (dict(temperature=-1.0), "temperature"),
    (dict(temperature=math.nan), "temperature"), (dict(temperature=math.inf), "temperature"),
    (dict(top_k=0), "top_k"), (dict(top_k=-3), "top_k"), (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(top_p=-0.1), "top_p"),
    (dict(top_p=math.nan), "top_p"), (dict(cfg_scale=-1.0), "cfg_scale"), (dict(cfg_scale=math.nan), "cfg_scale"),
])
def test_bad_options_name_the_argument(vqvae, options, name):
    prior = tiny_prior(vqvae, "class")
    with pytest.raises(ValueError, match=name):
        SamplingOptions(**options).check(prior)


def test_cfg_scale_needs_a_conditional_model(vqvae):
    prior = tiny_prior(vqvae)
    with pytest.raises(ValueError, match="cfg_scale"):
        next(generate_codes(prior, 1, options=SamplingOptions(cfg_scale=2.0)))


def test_prefix_that_fills_the_grid_is_refused(vqvae):
    prior = tiny_prior(vqvae)
    with pytest.raises(ValueError, match="prefix"):
        next(generate_codes(prior, 1, prefix=torch.zeros(1, 32, dtype=torch.long)))
