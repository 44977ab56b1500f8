"""The pipeline: seeded generation, streaming, video prediction, sliding windows and input checks, on tiny
random models."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tiny_models import LONGER_VQVAE, greedy_codes, tiny_pipeline
from videogpt_core.data.transforms import to_model_video
from videogpt_core.inference.non_finite import NonFiniteLogitsError
from videogpt_core.inference.pipeline import VideoGPTPipeline, load_pipeline
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.models.checkpoints import save_pipeline


def random_video(n_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n_frames, height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def plain():
    return tiny_pipeline("none")


@pytest.fixture(scope="module")
def longer():
    """Three latent slices of two frames each: room for video prediction and a sliding window."""
    return tiny_pipeline("none", vqvae_overrides=LONGER_VQVAE, seed=3)


@pytest.fixture(scope="module")
def conditioned():
    return tiny_pipeline("all")


ACTION_RANGE = [[-3.0, 3.0], [-2.0, 2.5]]


@pytest.fixture(scope="module")
def ranged():
    """A conditioned model whose config records the action range of its training data."""
    return tiny_pipeline("all", action_range=ACTION_RANGE)


def conditioned_inputs(pipeline, n_frames: int | None = None) -> dict:
    n_frames = n_frames or pipeline.sequence_length
    actions = np.random.default_rng(1).normal(size=(n_frames, 2)).astype(np.float32)
    return dict(frames=random_video(1, 50, 70), label="run", actions=actions, n_frames=n_frames)


# ---- seeds, shapes, streaming ------------------------------------------------------------------------


def test_generate_returns_uint8_frames_and_codes(plain):
    result = plain.generate(n=2, seed=1)
    t, h, w = plain.prior.latent_shape
    assert result.frames.dtype == np.uint8
    assert result.frames.shape == (2, plain.sequence_length, plain.resolution, plain.resolution, 3)
    assert result.codes.shape == (2, t, h, w) and result.codes.dtype == torch.long
    assert result.seed == 1
    assert not np.array_equal(result.frames[0], result.frames[1])  # two samples, not one copied


def test_frames_are_the_decoded_codes(plain):
    result = plain.generate(seed=4)
    np.testing.assert_array_equal(plain.decode(result.codes), result.frames)


def test_same_seed_same_video_other_seed_other_video(plain):
    first = plain.generate(n=2, seed=7)
    again = plain.generate(n=2, seed=7)
    other = plain.generate(n=2, seed=8)
    np.testing.assert_array_equal(first.frames, again.frames)
    assert torch.equal(first.codes, again.codes)
    assert not torch.equal(first.codes, other.codes)
    assert not np.array_equal(first.frames, other.frames)


def test_a_chosen_seed_is_reported_and_reproduces_the_video(plain):
    result = plain.generate()
    assert isinstance(result.seed, int)
    np.testing.assert_array_equal(plain.generate(seed=result.seed).frames, result.frames)


def test_stream_yields_every_slice_and_ends_with_generate(plain):
    t, h, w = plain.prior.latent_shape
    fpl = plain.config.frames_per_latent
    updates = list(plain.stream(n=2, seed=5, options=SamplingOptions(temperature=0.9, top_k=8)))
    assert len(updates) == t
    for i, update in enumerate(updates, start=1):
        assert update.codes.shape == (2, i, h, w)
        assert update.frames.shape[:2] == (2, i * fpl)
        assert (update.tokens_done, update.tokens_total) == (i * h * w, t * h * w)
        assert update.finished == (i == t)
        assert update.seed == 5
    result = plain.generate(n=2, seed=5, options=SamplingOptions(temperature=0.9, top_k=8))
    np.testing.assert_array_equal(updates[-1].frames, result.frames)
    assert torch.equal(updates[-1].codes, result.codes)
    # Earlier updates are prefixes of the final codes: nothing is re-sampled.
    for update in updates:
        assert torch.equal(update.codes, result.codes[:, : update.codes.shape[1]])


def test_each_later_window_continues_the_re_encoded_frames_before_it(longer):
    t, h, w = longer.prior.latent_shape  # 3 slices of 2 frames
    fpl = longer.config.frames_per_latent
    result = longer.generate(seed=2, n_frames=(t + 2) * fpl)
    frames, codes = result.frames, result.codes
    assert codes.shape[1] == t + 2
    np.testing.assert_array_equal(frames[:, : t * fpl], longer.decode(codes[:, :t]))  # the first window, whole
    for new in (t, t + 1):
        # The window's first t-1 slices: the frames shown before it, encoded together; its last: new codes.
        recent = to_model_video(frames[0, (new - t + 1) * fpl: new * fpl])[None]
        kept = longer.encode_prefix(recent, t - 1)
        window = longer.decode(torch.cat([kept, codes[:, new:new + 1]], dim=1))
        np.testing.assert_array_equal(frames[:, new * fpl:(new + 1) * fpl], window[:, -fpl:])


def test_reconstruct_encodes_and_decodes_window_by_window(longer):
    length, fpl = longer.sequence_length, longer.config.frames_per_latent  # 6 frames, 2 per slice
    video = to_model_video(random_video(length + 4, 16, 16))[None]
    frames, codes = longer.reconstruct(video)
    assert frames.shape == (1, length + 4, 16, 16, 3) and codes.shape[1] == (length + 4) // fpl
    with torch.no_grad():
        first = longer.vqvae.encode(video[:, :, :length])
        tail = longer.vqvae.encode(video[:, :, 4:])  # the whole window ending at the clip's end
    np.testing.assert_array_equal(frames[:, :length], longer.decode(first))
    np.testing.assert_array_equal(frames[:, length:], longer.decode(tail)[:, 2:])
    assert torch.equal(codes, torch.cat([first, tail[:, 1:]], dim=1))
    short, short_codes = longer.reconstruct(video[:, :, :4])  # shorter than a window: completed, then cut
    assert short.shape[1] == 4 and short_codes.shape[1] == 2
    with pytest.raises(ValueError, match="multiple of 2"):
        longer.reconstruct(video[:, :, :5])


def test_shorter_video_than_the_window(longer):
    result = longer.generate(seed=0, n_frames=3)
    assert result.frames.shape[1] == 3
    assert result.codes.shape[1] == 2  # ceil(3 frames / 2 frames per slice)


def test_saved_pipeline_loads_and_samples_the_same(tmp_path, conditioned):
    save_pipeline(tmp_path / "tiny", conditioned.vqvae, conditioned.prior)
    loaded = load_pipeline(tmp_path / "tiny", device="cpu", vqvae_bf16=False)
    inputs = conditioned_inputs(conditioned)
    np.testing.assert_array_equal(loaded.generate(seed=3, **inputs).frames,
                                  conditioned.generate(seed=3, **inputs).frames)
    assert loaded.class_names == ["walk", "run", "jump"]


# ---- conditioning inputs -----------------------------------------------------------------------------


def test_conditioned_model_takes_any_frame_size_and_one_action_row_per_frame(conditioned):
    inputs = conditioned_inputs(conditioned)
    image = conditioned.generate(seed=2, **inputs)
    assert image.frames.shape == (1, conditioned.sequence_length, 16, 16, 3)
    video_inputs = dict(inputs, frames=random_video(3, 70, 50))  # a (portrait) video works as well
    assert video_inputs["frames"].shape == (3, 70, 50, 3)
    assert conditioned.generate(seed=2, **video_inputs).frames.shape == image.frames.shape


def test_label_by_name_or_index_is_the_same(conditioned):
    inputs = conditioned_inputs(conditioned)
    by_name = conditioned.generate(seed=2, **inputs)
    by_index = conditioned.generate(seed=2, **dict(inputs, label=1))
    by_text_index = conditioned.generate(seed=2, **dict(inputs, label="1"))
    other = conditioned.generate(seed=2, **dict(inputs, label="jump"))
    assert torch.equal(by_name.codes, by_index.codes) and torch.equal(by_name.codes, by_text_index.codes)
    assert not torch.equal(by_name.codes, other.codes)


def test_actions_change_the_video(conditioned):
    inputs = conditioned_inputs(conditioned)
    base = conditioned.generate(seed=2, **inputs)
    moved = conditioned.generate(seed=2, **dict(inputs, actions=inputs["actions"] + 2.0))
    assert not torch.equal(base.codes, moved.codes)


def test_guidance_through_the_pipeline(conditioned):
    inputs = conditioned_inputs(conditioned)
    plain_result = conditioned.generate(seed=2, **inputs)
    assert torch.equal(conditioned.generate(seed=2, options=SamplingOptions(cfg_scale=1.0), **inputs).codes, plain_result.codes)
    assert not torch.equal(conditioned.generate(seed=2, options=SamplingOptions(cfg_scale=4.0), **inputs).codes, plain_result.codes)


# ---- video prediction and sliding windows ------------------------------------------------------------


@pytest.mark.parametrize("n_given", [2, 4, 5])
def test_video_prediction_keeps_the_codes_of_the_given_frames(longer, n_given):
    fpl = longer.config.frames_per_latent
    frames = random_video(n_given, 16, 16, seed=n_given)
    known = n_given // fpl
    # Encoded in a whole window: the given frames, then the last one repeated.
    window = np.concatenate([frames] + [frames[-1:]] * (longer.config.sequence_length - n_given))
    expected_prefix = longer.vqvae.encode(to_model_video(window)[None])[:, :known]
    result = longer.generate(frames=frames, seed=0, options=SamplingOptions(top_k=1))
    assert torch.equal(result.codes[:, :known], expected_prefix)
    # The rest is the greedy continuation of those codes.
    assert torch.equal(result.codes, greedy_codes(longer.prior, 1, prefix=expected_prefix.flatten(1)))


def test_video_prediction_from_a_large_video_resizes_it(longer):
    frames = random_video(4, 50, 70)
    result = longer.generate(frames=frames, seed=0)
    prepared = longer.prepare_frames(frames)
    assert prepared.shape == (1, 3, 4, 16, 16)
    assert torch.equal(result.codes[:, :2], longer.encode_prefix(prepared, 2))


def test_prefix_codes_of_a_whole_window_are_its_in_context_codes(longer):
    t = longer.config.latent_shape[0]
    frames = random_video(longer.config.sequence_length, 16, 16, seed=3)
    in_context = longer.vqvae.encode(longer.prepare_frames(frames))
    result = longer.generate(frames=frames, seed=0)
    assert torch.equal(result.codes[:, : t - 1], in_context[:, : t - 1])


def test_video_prediction_streams_the_known_slices_first(longer):
    h, w = longer.prior.latent_shape[1:]
    updates = list(longer.stream(frames=random_video(4, 16, 16), seed=0))
    assert [u.tokens_done for u in updates] == [h * w, 2 * h * w, 3 * h * w]
    assert updates[0].frames.shape[1] == 2


@pytest.mark.parametrize("n_frames", [7, 10])
def test_sliding_window_gives_the_requested_frames(longer, n_frames):
    fpl = longer.config.frames_per_latent
    slices = math.ceil(n_frames / fpl)
    updates = list(longer.stream(seed=1, n_frames=n_frames))
    assert [u.codes.shape[1] for u in updates] == list(range(1, slices + 1))
    assert [u.frames.shape[1] for u in updates] == [min(i * fpl, n_frames) for i in range(1, slices + 1)]
    assert updates[-1].tokens_done == updates[-1].tokens_total
    result = longer.generate(seed=1, n_frames=n_frames)
    assert result.frames.shape == (1, n_frames, 16, 16, 3)
    assert result.codes.shape[1] == slices
    np.testing.assert_array_equal(updates[-1].frames, result.frames)


def test_a_one_slice_window_slides_on_its_last_frames():
    pipeline = tiny_pipeline("frames", vqvae_overrides=dict(sequence_length=2))  # t = 1 slice of 2 frames
    assert pipeline.prior.latent_shape[0] == 1
    updates = list(pipeline.stream(frames=random_video(1, 16, 16), n_frames=6, seed=0))
    assert [u.frames.shape[1] for u in updates] == [2, 4, 6]
    np.testing.assert_array_equal(updates[-1].frames, pipeline.generate(frames=random_video(1, 16, 16),
                                                                        n_frames=6, seed=0).frames)


def test_sliding_window_with_top_k_1_is_deterministic_greedy_continuation(longer):
    t, h, w = longer.prior.latent_shape
    result = longer.generate(seed=0, options=SamplingOptions(top_k=1), n_frames=10)
    assert torch.equal(result.codes, longer.generate(seed=99, options=SamplingOptions(top_k=1), n_frames=10).codes)
    codes = result.codes
    assert torch.equal(codes[:, :t], greedy_codes(longer.prior, 1))
    fpl = longer.config.frames_per_latent
    for new in range(t, codes.shape[1]):
        # Each new slice continues the frames of the last t-1 slices, re-encoded, as the start of a video.
        recent = to_model_video(result.frames[0, (new - t + 1) * fpl: new * fpl])[None]
        window = greedy_codes(longer.prior, 1, prefix=longer.encode_prefix(recent, t - 1).flatten(1))
        assert torch.equal(codes[:, new], window[:, t - 1])


def test_sliding_window_shifts_actions_and_first_frame_with_the_window():
    # Window k starts at latent slice k: it sees the action rows of its own frames and, as its conditioning
    # frame, the first frame of the slices it keeps (whose frames, re-encoded, are its prefix).
    pipeline = tiny_pipeline("all", vqvae_overrides=LONGER_VQVAE, seed=5)
    prior, fpl = pipeline.prior, pipeline.config.frames_per_latent
    t = prior.latent_shape[0]
    n_frames = 8  # 4 slices: the first window of 3, then one slide
    actions = np.random.default_rng(2).normal(size=(n_frames, 2)).astype(np.float32)
    image = random_video(1, 16, 16)
    result = pipeline.generate(frames=image, label="walk", actions=actions, options=SamplingOptions(top_k=1), n_frames=n_frames, seed=0)
    codes = result.codes
    labels = torch.tensor([0])
    first_frame = pipeline.prepare_frames(image)
    assert torch.equal(codes[:, :t], greedy_codes(prior, 1, frames=first_frame, labels=labels,
                                                  actions=torch.from_numpy(actions[: t * fpl])[None]))
    recent = to_model_video(result.frames[0, fpl: t * fpl])[None]
    window = greedy_codes(prior, 1, prefix=pipeline.encode_prefix(recent, t - 1).flatten(1),
                          frames=recent[:, :, :1], labels=labels,
                          actions=torch.from_numpy(actions[fpl:(t + 1) * fpl])[None])
    assert torch.equal(codes[:, t], window[:, t - 1])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["compiled", "whole_cache", "cuda_graph"])
def test_compiled_decode_step_samples_what_eager_samples(mode):
    # torch.compile(fullgraph=True): no graph breaks, same codes. "compiled" is what compile=True does on a
    # CPU; "whole_cache" (position tensors, whole cache masked) what it does there for a world model;
    # "cuda_graph" what it does on CUDA, compiled here on the CPU.
    eager = tiny_pipeline("class")
    twin = tiny_pipeline("class")
    compiled = VideoGPTPipeline(twin.vqvae, twin.prior, device="cpu", vqvae_bf16=False, compile=True,
                                decode_mode=None if mode == "compiled" else mode)
    assert compiled.compiled and compiled.decode_step.mode == mode
    # The mode is the pipeline's: the prior's own step stays eager for another pipeline sharing it.
    shared = VideoGPTPipeline(twin.vqvae, twin.prior, device="cpu", vqvae_bf16=False)
    assert shared.decode_step.mode == "eager" and compiled.decode_step.mode == mode
    for seed in (3, 4):
        expected = eager.generate(n=2, label="run", seed=seed, options=SamplingOptions(top_k=8))
        assert torch.equal(compiled.generate(n=2, label="run", seed=seed, options=SamplingOptions(top_k=8)).codes, expected.codes)


@pytest.mark.slow
def test_a_step_compiled_while_a_video_streams_takes_over_at_the_next_window():
    # `python app.py --compile background` compiles while it serves: a generation that sees the step change
    # between two sliding windows samples exactly what an eager one does.
    eager = tiny_pipeline("class")
    twin = tiny_pipeline("class")
    n_frames = eager.sequence_length + 2 * eager.config.frames_per_latent  # three windows
    expected = eager.generate(label="run", seed=5, options=SamplingOptions(top_k=8), n_frames=n_frames)
    modes, codes = [], None
    for update in twin.stream(label="run", seed=5, options=SamplingOptions(top_k=8), n_frames=n_frames):
        modes.append(twin.decode_step.mode)
        if len(modes) == 1:
            twin.compile_decode_step()
        codes = update.codes
    assert modes[0] == "eager" and modes[-1] == "compiled" and twin.compiled
    assert torch.equal(codes, expected.codes)


@pytest.mark.slow
def test_several_priors_compile_in_one_process():
    # `python app.py --compile` compiles every model it serves: each prior's graphs are counted and looked up
    # apart from the others' (dynamo's default pools them all under one limit of 8 and refuses one of them).
    # Priors of different shapes (as the shipped models are), so none can reuse another's graphs.
    pipelines = [tiny_pipeline("class", hidden_dim=width, n_heads=2) for width in (12, 18, 24, 30)]
    for pipeline in pipelines:
        pipeline.compile_decode_step()
        assert pipeline.compiled
        assert pipeline.generate(n=2, label="run", seed=0, options=SamplingOptions(top_k=4)).codes.shape[0] == 2


@pytest.mark.slow
def test_the_cuda_graph_step_writes_only_static_inputs(monkeypatch):
    # CUDA graph trees skip a graph that writes into a tensor they would copy in at each replay ("skipping
    # cudagraphs due to mutated inputs"): the KV caches must be static inputs, and so should all the state
    # (else it is copied every token). Checked on the graph inductor compiles, here on the CPU.
    import inspect

    import torch._inductor.output_code as output_code

    graphs = []
    init = output_code.CompiledFxGraph.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        bound = inspect.signature(init).bind(self, *args, **kwargs).arguments
        graphs.append((set(self.mutated_input_idxs), set(bound["static_input_idxs"]),
                       len(bound["example_inputs"])))

    monkeypatch.setattr(output_code.CompiledFxGraph, "__init__", record)
    torch._dynamo.reset()
    plain = tiny_pipeline("all")
    pipeline = VideoGPTPipeline(plain.vqvae, plain.prior, device="cpu", vqvae_bf16=False, decode_mode="cuda_graph")
    actions = np.zeros((pipeline.sequence_length, pipeline.config.action_dim), np.float32)
    # torch's own patch context: a cached graph skips __init__, and a monkeypatched config entry is
    # deleted on undo by recent pytest, which hides the setting from later tests.
    with torch._inductor.config.patch(fx_graph_cache=False):
        pipeline.generate(n=1, frames=np.full((1, 16, 16, 3), 90, np.uint8), label="run", actions=actions,
                          seed=0)
        pipeline.generate(n=1, frames=np.full((1, 16, 16, 3), 30, np.uint8), label="walk", actions=actions + 1,
                          seed=1)
    assert len(graphs) == 1  # the second generation reuses the graph: same shapes, same state
    mutated, static, n_inputs = graphs[0]
    assert len(mutated) == 2 * pipeline.config.n_layers and mutated <= static
    assert n_inputs - len(static) <= 2  # the previous code and the position; any symbolic sizes would add


@pytest.mark.slow
def test_a_warmed_up_compiled_pipeline_never_compiles_again():
    # Every call shape a generation makes (batch 1, batches from 2 with and without guidance, a video
    # prefix, a sliding window) is served by the graphs warm_up compiles.
    from torch._dynamo.utils import counters

    pipeline = tiny_pipeline("all")
    before = counters["stats"]["unique_graphs"]
    pipeline.warm_up()  # not compiled: nothing to do
    assert counters["stats"]["unique_graphs"] == before
    compiled = VideoGPTPipeline(pipeline.vqvae, pipeline.prior, device="cpu", vqvae_bf16=False, compile=True)
    compiled.warm_up()
    graphs = counters["stats"]["unique_graphs"]
    frames = np.full((2 * pipeline.config.frames_per_latent, 16, 16, 3), 90, np.uint8)
    for n, cfg_scale, n_frames, given in ((1, None, None, frames[:1]), (1, 2.0, None, frames[:1]),
                                          (3, None, None, frames), (2, 1.5, pipeline.sequence_length + 4, frames)):
        actions = np.zeros((n_frames or pipeline.sequence_length, 2), np.float32)
        compiled.generate(n=n, frames=given, label="run", actions=actions, options=SamplingOptions(cfg_scale=cfg_scale), seed=0,
                          n_frames=n_frames)
    assert counters["stats"]["unique_graphs"] == graphs


def test_sliding_window_with_actions_and_frames(conditioned):
    n_frames = conditioned.sequence_length + 3
    result = conditioned.generate(seed=0, **conditioned_inputs(conditioned, n_frames))
    assert result.frames.shape[1] == n_frames


# ---- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, name", [
    (dict(temperature=0.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.01), "top_p"), (dict(top_k=0), "top_k"),
    (dict(cfg_scale=2.0), "cfg_scale"), (dict(n=0), "n "), (dict(n_frames=0), "n_frames"),
    (dict(label="run"), "label"), (dict(actions=np.zeros((4, 2))), "actions"),
    (dict(frames=random_video(1, 16, 16)), "frames"),  # one frame: neither conditioning nor a whole slice
    (dict(frames=np.zeros((2, 16, 16, 3), np.float32)), "frames"),
    (dict(n=2.0), "n "), (dict(n=True), "n "), (dict(n="2"), "n "), (dict(n_frames=4.5), "n_frames"),
    (dict(seed=1.5), "seed"), (dict(seed=-1), "seed"), (dict(seed=2**70), "seed"), (dict(seed="3"), "seed"),
    (dict(top_k=float("nan")), "top_k"), (dict(temperature=float("inf")), "temperature"),
])
def test_bad_input_to_an_unconditional_model(plain, kwargs, name):
    knobs = {key: kwargs.pop(key) for key in ("temperature", "top_k", "top_p", "cfg_scale") if key in kwargs}
    with pytest.raises(ValueError, match=name):  # made (a bad value) or used (a knob this model lacks)
        plain.generate(**{"seed": 0, **kwargs}, options=SamplingOptions(**knobs))


@pytest.mark.parametrize("change, name", [
    (dict(label="fly"), "label"), (dict(label=3), "label"), (dict(label=-1), "label"), (dict(label="7"), "label"),
    (dict(label=None), "label"), (dict(actions=None), "actions"), (dict(frames=None), "frames"),
    (dict(actions=np.zeros((5, 2))), "actions"), (dict(actions=np.zeros((3, 2))), "actions"),
    (dict(actions=np.zeros((4, 3))), "actions"), (dict(actions=np.zeros(8)), "actions"),
    (dict(actions=np.full((4, 2), np.nan)), "actions"), (dict(actions=[["a", "b"]] * 4), "actions"),
    (dict(frames=np.zeros((16, 16), np.uint8)), "frames"),
    (dict(label=7.9), "label"), (dict(label=1.0), "label"), (dict(label=True), "label"), (dict(label=[1]), "label"),
])
def test_bad_input_to_a_conditioned_model(conditioned, change, name):
    inputs = dict(conditioned_inputs(conditioned), **change)
    with pytest.raises(ValueError, match=name):
        conditioned.generate(seed=0, **inputs)


def test_whole_numbers_of_any_integer_type_are_accepted(conditioned):
    inputs = dict(conditioned_inputs(conditioned), label=np.int64(1))
    result = conditioned.generate(n=np.int64(2), seed=np.int64(4), **inputs)
    assert result.frames.shape[0] == 2 and result.seed == 4
    same = conditioned.generate(n=2, seed=4, **dict(inputs, label="run"))
    assert torch.equal(result.codes, same.codes)


@pytest.mark.parametrize("value, row, column", [
    (10.0, 1, 1), (1e6, 1, 1), (1e30, 1, 1), (-3.5, 1, 1), (np.float32(2.6), 1, 2),
])
def test_actions_outside_the_trained_range_are_refused_stating_the_range(ranged, value, row, column):
    actions = np.zeros((ranged.sequence_length, 2), np.float32)
    actions[row - 1, column - 1] = value
    inputs = dict(conditioned_inputs(ranged), actions=actions)
    with pytest.raises(ValueError, match=rf"row {row}, column {column} .* outside the range this model was trained "
                                         r"on \(column 1 in \[-3, 3\], column 2 in \[-2, 2.5\]\)"):
        ranged.generate(seed=0, **inputs)


def test_actions_at_the_edge_of_the_trained_range_are_sampled(ranged):
    actions = np.tile(np.float32([[3.0, -2.0], [-3.0, 2.5]]), (ranged.sequence_length // 2, 1))
    result = ranged.generate(seed=0, **dict(conditioned_inputs(ranged), actions=actions))
    assert result.frames.shape[1] == ranged.sequence_length


def test_non_finite_logits_raise_an_error_naming_the_checkpoint(tmp_path):
    source = tiny_pipeline("all")  # no recorded range: huge actions reach the prior
    folder = save_pipeline(tmp_path / "huge-actions", source.vqvae, source.prior)
    pipeline = load_pipeline(folder, device="cpu")
    inputs = conditioned_inputs(pipeline)
    with pytest.raises(NonFiniteLogitsError, match=rf"{tmp_path}/huge-actions: .*NaN or infinite logits"):
        pipeline.generate(seed=0, **dict(inputs, actions=np.full_like(inputs["actions"], 1e30)))
    with torch.no_grad():  # broken weights after loading (a load refuses them)
        pipeline.prior.fc_out.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteLogitsError, match="huge-actions"):
        pipeline.generate(seed=0, **inputs)


@pytest.mark.parametrize("device, message", [
    ("tpu9", "not a torch device"), ("meta", "not supported"), (3.5, "not a torch device"),
    pytest.param("cuda", "sees no CUDA GPU", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU")),
])
def test_unusable_devices_are_refused(device, message):
    vqvae_and_prior = tiny_pipeline("none")
    with pytest.raises(ValueError, match=message):
        VideoGPTPipeline(vqvae_and_prior.vqvae, vqvae_and_prior.prior, device=device)


def _broken_config(folder, part, edit):
    path = folder / part / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


@pytest.mark.parametrize("part, edit, message", [
    ("prior", lambda c: {**c, "n_layers": "4"}, r"prior/config.json: field 'n_layers' must be int, got '4'"),
    ("prior", lambda c: {**c, "latent_shape": [4, "16", 16]}, r"field 'latent_shape' must be tuple"),
    ("prior", lambda c: {**c, "dropout": "0.1"}, r"field 'dropout' must be float"),
    ("prior", lambda c: {**c, "n_heads": 0}, r"n_heads must be >= 1"),
    ("prior", lambda c: {**c, "action_range": [[0, 1]]}, r"action_range has 1 \[low, high\] pairs for action_dim=0"),
    ("vqvae", lambda c: {**c, "downsample": "444"}, r"vqvae/config.json: field 'downsample'"),
    ("vqvae", lambda c: [c], r"vqvae/config.json: must be a JSON object of VQVAEConfig fields, got list"),
    ("prior", lambda c: None, r"prior/config.json: must be a JSON object of VideoGPTConfig fields, got NoneType"),
    ("prior", lambda c: 4, r"got int"),
])
def test_a_broken_config_json_is_a_value_error_naming_the_file_and_field(tmp_path, part, edit, message):
    source = tiny_pipeline("none")
    folder = save_pipeline(tmp_path / "model", source.vqvae, source.prior)
    _broken_config(folder, part, edit)
    with pytest.raises(ValueError, match=message):
        load_pipeline(folder, device="cpu")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load_naming_the_checkpoint(tmp_path, value):
    source = tiny_pipeline("none")
    with torch.no_grad():
        source.prior.fc_out.weight[1, 2] = value
    folder = save_pipeline(tmp_path / "broken", source.vqvae, source.prior)
    with pytest.raises(ValueError, match=r"broken/prior/model.safetensors: 1 tensor\(s\) hold NaN or infinite "
                                         r"values \(fc_out.weight\)"):
        load_pipeline(folder, device="cpu")


def test_bad_input_fails_before_streaming_starts(conditioned):
    # A generator that raised only on its first next() would be fine too; it must not yield first.
    stream = conditioned.stream(seed=0, **dict(conditioned_inputs(conditioned), label="fly"))
    with pytest.raises(ValueError, match="label"):
        next(iter(stream))


def test_load_pipeline_is_a_package_level_name():
    import videogpt_core
    from videogpt_core.inference import pipeline

    assert videogpt_core.load_pipeline is pipeline.load_pipeline
    assert videogpt_core.VideoGPTPipeline is pipeline.VideoGPTPipeline
    with pytest.raises(AttributeError):
        videogpt_core.no_such_name


# ------------------------------------------------------------------------------------------------ kept first frame

CAUSAL_PER_FRAME = dict(downsample=(1, 4, 4), causal=True)


def test_a_causal_per_frame_world_model_keeps_the_given_frame_exactly():
    """Frame 1 of every sample is the codec's reconstruction of the given frame (its codes start the grid and
    are never sampled), however long the video and whatever the actions."""
    pipe = tiny_pipeline("actions", vqvae_overrides=CAUSAL_PER_FRAME)
    assert pipe.config.frames_per_latent == 1
    first = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    model_frame = pipe.prepare_frames(first)
    expected_codes = pipe.vqvae.encode(model_frame)  # the frame encoded alone
    expected_frame = pipe.decode(expected_codes)[0, 0]
    for n_frames, seed in ((4, 0), (9, 1)):  # one window, and a sliding window beyond it
        actions = np.random.default_rng(seed).normal(size=(n_frames, 2)).astype(np.float32)
        result = pipe.generate(n=2, frames=first, actions=actions, seed=seed, n_frames=n_frames)
        assert result.frames.shape == (2, n_frames, 16, 16, 3)
        assert torch.equal(result.codes[:, :1], expected_codes.expand(2, -1, -1, -1).cpu())
        for sample in result.frames:
            assert np.array_equal(sample[0], expected_frame)


def test_a_non_causal_codec_does_not_keep_the_given_frame():
    """The property above can fail: a codec that looks ahead in time decodes frame 1 with the sampled frames."""
    pipe = tiny_pipeline("actions", vqvae_overrides=dict(downsample=(1, 4, 4)))
    first = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    actions = np.zeros((4, 2), np.float32)
    frames = [pipe.generate(n=1, frames=first, actions=actions, seed=seed).frames[0, 0] for seed in (0, 1, 2)]
    assert not all(np.array_equal(frames[0], other) for other in frames[1:])


def test_a_per_frame_world_model_keeps_the_given_frame_and_plays_frame_by_frame():
    """The per-frame codec (every frame coded alone) keeps the given frame too; Play, which decodes only a step's
    new frame with such a codec, shows what decoding the whole window shows."""
    from videogpt_core.inference.play import PlaySession

    pipe = tiny_pipeline("actions", vqvae_overrides=dict(CAUSAL_PER_FRAME, per_frame=True))
    first = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    expected_frame = pipe.decode(pipe.vqvae.encode(pipe.prepare_frames(first)))[0, 0]
    actions = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)
    result = pipe.generate(n=1, frames=first, actions=actions, seed=0, n_frames=6)
    assert np.array_equal(result.frames[0, 0], expected_frame)
    session = PlaySession(pipe, first, seed=0)
    for row in actions[:5]:
        step = session.step(row)
        window_frames = pipe.decode(session._window.grid())[0]
        assert np.array_equal(step.frames[0], window_frames[-1])


def test_generate_play_and_evaluation_slide_a_per_frame_window_alike():
    """Past the window, the pipeline, Play and evaluation's batched rollouts keep the last slices' codes as sampled
    (one slide, WindowSampler.slid): greedy from the same frame and actions, all three draw the same codes."""
    from videogpt_core.evaluation.clips import sample_clips
    from videogpt_core.inference.play import PlaySession

    pipe = tiny_pipeline("actions", vqvae_overrides=dict(CAUSAL_PER_FRAME, per_frame=True))
    greedy = SamplingOptions(top_k=1)
    n_frames = 2 * pipe.sequence_length + 1  # two slides
    first = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    actions = np.random.default_rng(1).normal(size=(n_frames, 2)).astype(np.float32)
    actions[0] = 0  # the start frame's row, as Play gives it
    generated = pipe.generate(n=1, frames=first, actions=actions, seed=0, n_frames=n_frames, options=greedy)

    session = PlaySession(pipe, first, seed=0, options=greedy)
    played = [session.step(row).frames for row in actions[1:]]
    assert np.array_equal(np.concatenate(played), generated.frames[0, 1:])

    video = pipe.prepare_frames(first)
    clips = sample_clips(pipe, 1, greedy, torch.Generator().manual_seed(0), actions=torch.from_numpy(actions)[None],
                         prefix_video=video, n_frames=n_frames)
    assert np.array_equal(clips[0], generated.frames[0])


def test_only_a_full_window_slides_and_it_keeps_part_of_itself():
    from videogpt_core.inference.sampling import WindowSampler
    from videogpt_core.models.conditions import Conditions

    pipe = tiny_pipeline("actions", vqvae_overrides=dict(CAUSAL_PER_FRAME, per_frame=True))
    t = pipe.prior.latent_shape[0]
    window = WindowSampler(pipe.prior, 1, Conditions(actions=torch.zeros(1, pipe.sequence_length, 2)))
    window.next_slice()
    with pytest.raises(ValueError, match="only a full window slides"):
        window.slid(t - 1)
    while not window.full:
        window.next_slice()
    with pytest.raises(ValueError, match=f"keeps 1..{t - 1} slices"):
        window.slid(t)
    slid = window.slid(t - 1)
    assert torch.equal(slid.grid(), window.grid()[:, 1:]) and slid.slices_done == t - 1


def test_play_speculates_as_its_pipeline_says_without_drawing_past_the_step():
    """A pipeline made with draft_tokens speculates in Play too; greedy, it plays the frames one-code decoding
    plays, and no verify pass draws a code of the next step, whose key is not pressed yet."""
    from videogpt_core.inference.play import PlaySession

    overrides = dict(CAUSAL_PER_FRAME, per_frame=True)
    plain = tiny_pipeline("actions", vqvae_overrides=overrides)
    speculating = tiny_pipeline("actions", vqvae_overrides=overrides)
    speculating.draft_tokens, speculating.draft = 8, "previous-slice"
    first = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    actions = np.random.default_rng(1).normal(size=(9, 2)).astype(np.float32)
    sessions = [PlaySession(pipe, first, seed=0, options=SamplingOptions(top_k=1)) for pipe in (plain, speculating)]
    for row in actions:
        steps = [session.step(row) for session in sessions]
        assert np.array_equal(steps[0].frames, steps[1].frames)
        window = sessions[1]._window
        assert window.speculation is not None and window.position == window.slices_done * window.slice_len


def test_other_conditions_are_checked_by_name(plain):
    with pytest.raises(TypeError, match=r"unknown conditions \['colour'\]"):
        plain.generate(1, colour=[1.0, 0.0])
    with pytest.raises(ValueError, match="label="):
        plain.generate(1, labels=[0])
