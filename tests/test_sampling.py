"""The cached decoder and the sampler: cached logits equal the teacher-forced forward, draws follow the
probabilities, and guidance mixes the conditional and unconditional models."""
from __future__ import annotations

import math

import pytest
import torch

from tiny_models import (CONDITIONINGS, greedy_codes, random_inputs, tiny_prior, tiny_vqvae,
                         unconditional_twin)
from videogpt_core.inference.code_picker import draw
from videogpt_core.inference.decode_step import DecodeStep
from videogpt_core.inference.sampling import WindowSampler, generate_codes
from videogpt_core.inference.sampling_options import SamplingOptions, process_logits
from videogpt_core.inference.speculative import DRAFTS, SpeculationStats, accept_proposals, propose
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.prior import VideoGPT


@pytest.fixture(scope="module")
def vqvae():
    return tiny_vqvae()


def final_codes(prior, batch, seed, frames=None, labels=None, actions=None, prefix=None, **kwargs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    conditions = Conditions(frames=frames, labels=labels, actions=actions, prefix=prefix)
    last = None
    for last, _ in generate_codes(prior, batch, conditions, generator=generator, **kwargs):
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
        state = prior.start_decoding(2, static=static, conditions=Conditions(**inputs))
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
    static = final_codes(prior, 2, seed=11, step=DecodeStep("cuda_graph", prior.decode_step), **inputs)
    assert torch.equal(eager, static)


def test_static_decoding_keeps_one_state_per_shape_for_one_generation_at_a_time(vqvae):
    # A CUDA graph is recorded on the state's addresses: each generation must decode in the same tensors,
    # refilled with its own inputs, and two generations at once must not share them.
    prior = tiny_prior(vqvae, "all")
    inputs, other = random_inputs(prior, batch=2, seed=2), random_inputs(prior, batch=2, seed=5)
    first = prior.start_decoding(2, static=True, conditions=Conditions(**inputs))
    addresses = [t.data_ptr() for t in first.tensors()]
    weights = {p.data_ptr() for p in prior.parameters()}
    # Copies, not the model's weights: both the state and the decoding copy's layouts.
    assert not (set(addresses) | {t.data_ptr() for t in first.decoder.tensors()}) & weights
    busy = prior.start_decoding(2, static=True, conditions=Conditions(**inputs))
    assert busy is not first and not set(addresses) & {t.data_ptr() for t in busy.tensors()}
    assert busy.decoder is first.decoder  # one decoding copy per weight format, shared
    first.release()
    again = prior.start_decoding(2, static=True, conditions=Conditions(**other))
    assert again is first and [t.data_ptr() for t in again.tensors()] == addresses
    fresh = prior.start_decoding(2, conditions=Conditions(**other))
    assert all(torch.equal(a, b) for a, b in zip(again.tensors(), fresh.tensors(), strict=True))
    single = prior.start_decoding(1, static=True, conditions=Conditions(**random_inputs(prior, batch=1)))
    assert single is not first and single is not busy
    with pytest.raises(ValueError, match="quantize"):
        prior.start_decoding(1, static=True, quantize="int8")
    assert prior.double().static_states == {} and prior.float().static_states == {}  # moved: dropped
    assert prior.decoders == {}

    # The sampling loop gives its state back when it finishes and when it is stopped early.
    static_step = DecodeStep("cuda_graph", prior.decode_step)  # the CUDA-graph loop, run eagerly
    slice_len = prior.latent_shape[1] * prior.latent_shape[2]
    for prefix in (None, torch.zeros(2, slice_len, dtype=torch.long)):  # stopped in a sampled / given slice
        steps = generate_codes(prior, 2, Conditions(**inputs, prefix=prefix), step=static_step,
                               generator=torch.Generator().manual_seed(0))
        next(steps)
        assert sum(state.in_use for states in prior.static_states.values() for state in states) == 1
        steps.close()
        assert not any(state.in_use for states in prior.static_states.values() for state in states)


def test_a_window_given_its_actions_slice_by_slice_samples_what_generate_codes_samples(vqvae):
    # Play's way (each slice's actions given just before it) and generate's (all known) are one sampler.
    prior = tiny_prior(vqvae, "actions")
    inputs = random_inputs(prior, batch=2)
    expected = final_codes(prior, 2, seed=4, **inputs)
    fpl = prior.config.frames_per_latent
    window = WindowSampler(prior, 2, Conditions(actions=inputs["actions"][:, :0]),
                           generator=torch.Generator().manual_seed(4))
    for step in range(prior.latent_shape[0]):
        window.next_slice(inputs["actions"][:, step * fpl:(step + 1) * fpl])
    assert window.full and torch.equal(window.codes.view_as(expected), expected)
    window.rewind(1)
    assert window.slices_done == prior.latent_shape[0] - 1 and not window.full


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


def test_cfg_scale_needs_a_conditional_model(vqvae):
    prior = tiny_prior(vqvae)
    with pytest.raises(ValueError, match="cfg_scale"):
        next(generate_codes(prior, 1, options=SamplingOptions(cfg_scale=2.0)))


def test_prefix_that_fills_the_grid_is_refused(vqvae):
    prior = tiny_prior(vqvae)
    with pytest.raises(ValueError, match="prefix"):
        next(generate_codes(prior, 1, Conditions(prefix=torch.zeros(1, 32, dtype=torch.long))))


# ---- speculative sampling ----------------------------------------------------------------------------


@pytest.mark.parametrize("conditioning", list(CONDITIONINGS))
def test_speculative_top_k_1_gives_the_codes_of_one_code_decoding(vqvae, conditioning):
    prior = tiny_prior(vqvae, conditioning, seed=4)
    inputs = random_inputs(prior, batch=2)
    expected = final_codes(prior, 2, seed=0, options=SamplingOptions(top_k=1), **inputs)
    assert len(expected.unique()) > 2  # a real sequence, not one repeated code
    for draft in DRAFTS:
        for k in (2, 5):
            stats = SpeculationStats()
            sampled = final_codes(prior, 2, seed=1, options=SamplingOptions(top_k=1), draft_tokens=k, draft=draft,
                                  stats=stats, **inputs)
            assert torch.equal(sampled, expected), (draft, k)
            assert stats.positions == prior.config.seq_len - 1  # every position after the first, once
            assert stats.passes < stats.positions or draft != "left"  # some proposals were right


@pytest.mark.parametrize("conditioning", ["class", "actions"])
def test_speculative_guided_greedy_equals_one_code_decoding(vqvae, conditioning):
    prior = tiny_prior(vqvae, conditioning, seed=4)
    inputs = random_inputs(prior, batch=2)
    options = dict(top_k=1, cfg_scale=3.0)
    expected = final_codes(prior, 2, seed=0, options=SamplingOptions(**options), **inputs)
    sampled = final_codes(prior, 2, seed=0, options=SamplingOptions(**options), draft_tokens=4, **inputs)
    assert torch.equal(sampled, expected)


def test_speculative_with_a_prefix_keeps_it_and_continues_greedily(vqvae):
    prior = tiny_prior(vqvae)
    prefix = torch.randint(0, prior.n_codes, (2, 20), generator=torch.Generator().manual_seed(4))
    expected = greedy_codes(prior, 2, prefix=prefix)
    sampled = final_codes(prior, 2, seed=0, prefix=prefix, options=SamplingOptions(top_k=1), draft_tokens=3)
    assert torch.equal(sampled, expected)


def test_speculative_yields_once_per_slice_and_is_reproducible(vqvae):
    prior = tiny_prior(vqvae)
    t = prior.latent_shape[0]
    steps = generate_codes(prior, 1, generator=torch.Generator().manual_seed(0), draft_tokens=4)
    assert [done for _, done in steps] == list(range(1, t + 1))
    first = final_codes(prior, 2, seed=5, draft_tokens=4)
    assert torch.equal(first, final_codes(prior, 2, seed=5, draft_tokens=4))
    assert not torch.equal(first, final_codes(prior, 2, seed=6, draft_tokens=4))


def test_proposals_copy_the_left_neighbour_the_row_above_or_the_previous_slice():
    shape = (2, 2, 3)  # slices of 6 codes, rows of 3
    codes = torch.arange(12)[None]
    assert propose(codes, 7, 2, "left", shape).tolist() == [[7, 7]]
    assert propose(codes, 7, 2, "above", shape).tolist() == [[5, 6]]  # positions 8, 9: 3 earlier
    assert propose(codes, 7, 2, "previous-slice", shape).tolist() == [[2, 3]]
    assert propose(codes, 1, 2, "previous-slice", shape).tolist() == [[1, 1]]  # nothing there yet: left


def test_accept_proposals_keeps_accepted_codes_and_resamples_the_rejected_one():
    # Position 0 puts all mass on code 2 (proposed: accepted), position 1 none on code 0 (proposed: rejected).
    probs = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]])
    kept, code, accepted = accept_proposals(probs, torch.tensor([[2, 0]]), torch.Generator().manual_seed(0))
    assert kept == 1 and code.item() in (1, 2) and accepted.tolist() == [[True, False]]
    kept, code, accepted = accept_proposals(probs, torch.tensor([[2, 1]]), torch.Generator().manual_seed(0))
    assert kept in (1, 2) and accepted[0, 0]


def small_vocabulary_prior() -> VideoGPT:
    """An unconditional prior over (1, 1, 4) grids of 4 codes, random weights that make the codes depend on
    each other, with fc_out leaning towards repeating the previous code (about half the proposals of the
    left-neighbour draft are accepted)."""
    prior = VideoGPT(latent_shape=(1, 1, 4), n_codes=4, embedding_dim=8, sequence_length=2, resolution=8,
                     hidden_dim=24, n_heads=2, n_layers=2, dropout=0.0, attn_dropout=0.0)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        prior.codebook.normal_(generator=generator)
        for name, parameter in prior.named_parameters():
            if parameter.dim() >= 2:
                parameter.normal_(generator=generator).mul_(parameter.shape[1] ** -0.5)
        inputs = prior.fc_in(prior.codebook)  # (n_codes, hidden): what the previous code adds to the stream
        prior.fc_out.weight.add_(0.6 * inputs / inputs.norm(dim=-1, keepdim=True) * inputs.shape[1] ** 0.5 / 4)
    return prior.eval()


def exact_joint(prior: VideoGPT, n_tokens: int, options: SamplingOptions) -> torch.Tensor:
    """P(first n_tokens codes) under the filtered distributions, from the teacher-forced forward of every
    prefix: (n_codes,) * n_tokens."""
    n = prior.n_codes
    every = torch.cartesian_prod(*[torch.arange(n)] * n_tokens).view(-1, n_tokens)
    grid = torch.zeros(every.shape[0], prior.config.seq_len, dtype=torch.long)
    grid[:, :n_tokens] = every
    with torch.no_grad():
        logits = prior(grid.view(-1, *prior.latent_shape)).flatten(1, 3)[:, :n_tokens]
    probs = process_logits(logits, torch.zeros(logits.shape[0], 0, dtype=torch.long), options).softmax(-1)
    joint = probs.gather(-1, every[..., None]).squeeze(-1).prod(-1)
    return joint.view(*[n] * n_tokens)


@pytest.mark.slow
@pytest.mark.parametrize("options", [SamplingOptions(), SamplingOptions(temperature=0.8, top_k=3)],
                         ids=["plain", "temperature-top-k"])
def test_speculative_samples_follow_the_exact_distribution(options):
    # Every code of the grid: the first from the start token, the others through verify passes of up to
    # three positions, in batches of two (so a pass also stops where the other sample rejected).
    prior = small_vocabulary_prior()
    n_tokens, runs, batch = 4, 2000, 2
    exact = exact_joint(prior, n_tokens, options).flatten().double()
    assert exact.max() < 0.3  # a spread distribution: the test could see a wrong one
    counts = torch.zeros_like(exact)
    stats = SpeculationStats()
    generator = torch.Generator().manual_seed(17)
    weights = prior.n_codes ** torch.arange(n_tokens - 1, -1, -1)
    for _ in range(runs):
        for codes, _ in generate_codes(prior, batch, options=options, generator=generator, draft_tokens=3,
                                       draft="left", stats=stats):
            pass
        counts += torch.bincount((codes.flatten(1)[:, :n_tokens] * weights).sum(-1),
                                 minlength=exact.numel()).double()
    # Speculation did run: proposals were scored, some accepted, passes covered several positions.
    assert 0.1 < stats.acceptance < 0.9 and stats.positions_per_pass > 1.05
    total = runs * batch
    expected = exact * total
    assert counts[expected == 0].sum() == 0  # nothing outside the filtered support
    # Cells expected fewer than 5 times are pooled into one (the chi-square approximation needs counts).
    cells = expected >= 5
    counts = torch.cat([counts[cells], counts[~cells].sum()[None]])
    expected = torch.cat([expected[cells], expected[~cells].sum()[None]])
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    dof = len(counts) - 1
    # The 0.1% critical value of chi-square, by the Wilson-Hilferty approximation.
    critical = dof * (1 - 2 / (9 * dof) + 3.09 * math.sqrt(2 / (9 * dof))) ** 3
    assert chi_square < critical, (chi_square, critical)


def test_pipeline_reports_acceptance_and_samples_what_one_code_decoding_samples():
    from tiny_models import tiny_pipeline
    from videogpt_core.inference.pipeline import VideoGPTPipeline

    plain = tiny_pipeline("class", seed=3)
    speculative = VideoGPTPipeline(plain.vqvae, plain.prior, device="cpu", vqvae_bf16=False, draft_tokens=4)
    expected = plain.generate(n=2, label=1, options=SamplingOptions(top_k=1), seed=0)
    assert expected.speculation is None
    result = speculative.generate(n=2, label=1, options=SamplingOptions(top_k=1), seed=0)
    assert torch.equal(result.codes, expected.codes)
    stats = result.speculation
    assert stats["positions"] == plain.prior.config.seq_len - 1 and stats["passes"] <= stats["positions"]
    assert stats["proposed"] >= stats["accepted"] >= 0 and 0 <= stats["acceptance"] <= 1
    updates = list(speculative.stream(n=1, label=0, seed=1))
    assert all(update.speculation is not None for update in updates)
    assert updates[-1].speculation["positions"] == plain.prior.config.seq_len - 1
    with pytest.raises(ValueError, match="draft"):
        VideoGPTPipeline(plain.vqvae, plain.prior, device="cpu", draft="diagonal")
    with pytest.raises(ValueError, match="draft_tokens"):
        VideoGPTPipeline(plain.vqvae, plain.prior, device="cpu", draft_tokens=0)
