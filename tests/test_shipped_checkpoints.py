"""The checkpoints shipped in checkpoints/: what the demo and the model cards promise about them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import videogpt_core
from videogpt_core.data.transforms import to_model_video
from videogpt_core.data.worlds.pusher import generate_pusher_episode
from videogpt_core.evaluation.metrics import psnr_per_frame
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.io.video_io import read_video

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "checkpoints"
MAX_FOLDER_BYTES = 60 * 1024 * 1024


@pytest.fixture(scope="module")
def pusher():
    return videogpt_core.load_pipeline(CHECKPOINTS / "pusher", threads=1)


# All of the causal per-frame design: the given frame enters as its codes and is never sampled.
WORLD_MODELS = {"pusher": 2, "vizdoom": 3, "fetchpush": 4}  # name: action columns


@pytest.mark.parametrize("name", ["digits", *WORLD_MODELS])
def test_folders_are_complete_small_and_documented(name):
    folder = CHECKPOINTS / name
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_FOLDER_BYTES
    for part in ("vqvae", "prior"):
        assert (folder / part / "config.json").is_file() and (folder / part / "model.safetensors").is_file()
    card = (folder / "README.md").read_text()
    assert "videogpt eval --checkpoint checkpoints/" + name in card and "videogpt train-prior" in card


def test_digits_conditioning_matches_its_model_card():
    # (The world models' conditioning: test_world_models_roll_their_world_forward_from_a_test_frame.)
    digits = videogpt_core.load_pipeline(CHECKPOINTS / "digits", threads=1)
    assert digits.config.class_names == [str(d) for d in range(10)] and digits.config.n_cond_frames == 0
    assert digits.config.cond_drop_prob > 0  # guidance has an unconditional branch to work with
    result = digits.generate(label="7", options=SamplingOptions(cfg_scale=2.0), seed=0, n_frames=4)
    assert result.frames.shape == (1, 4, 64, 64, 3) and result.frames.std() > 5  # not a blank video


def test_a_given_frame_gets_the_codes_it_has_inside_a_clip(pusher):
    # A real test clip: a time-causal codec codes its first frame the same alone as inside the whole clip, so
    # the prefix a user's frame becomes is what the prior was trained on.
    clip = read_video(REPO / "demo" / "examples" / "pusher-clip.mp4")
    video = to_model_video(clip)[None]
    in_context = pusher.vqvae.encode(video)[:, :1]
    assert pusher.vqvae.config.causal
    assert torch.equal(pusher.vqvae.encode(video[:, :, :1]), in_context)
    assert torch.equal(pusher.encode_prefix(video[:, :, :1], 1), in_context)


def test_clips_longer_than_a_window_reconstruct_window_by_window(pusher):
    # 32-frame test episodes (seeds never trained on): every frame coded alone, so a window changes nothing.
    clips = [generate_pusher_episode(10_000_000 + i, n_frames=32).frames for i in range(2)]
    video = torch.stack([to_model_video(clip) for clip in clips])  # (2, 3, 32, 64, 64)
    frames, codes = pusher.reconstruct(video)
    slices = 32 // pusher.config.frames_per_latent
    assert frames.shape == (2, 32, 64, 64, 3) and codes.shape == (2, slices, *pusher.prior.latent_shape[1:])
    with torch.no_grad():
        at_once = pusher.decode(pusher.vqvae.encode(video))
    by_window = psnr_per_frame(video, torch.stack([to_model_video(f) for f in frames])).mean().item()
    whole = psnr_per_frame(video, torch.stack([to_model_video(f) for f in at_once])).mean().item()
    assert by_window > 30 and abs(by_window - whole) < 0.01, (by_window, whole)


def test_the_general_codec_is_complete_documented_and_reconstructs_a_photo_clip():
    from videogpt_core.codecs.reconstruct import compare_codecs, load_codec
    from videogpt_core.io.video_io import read_video

    folder = CHECKPOINTS / "general-codec-4x4x4"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_FOLDER_BYTES
    assert (folder / "vqvae" / "config.json").is_file() and (folder / "vqvae" / "model.safetensors").is_file()
    card = (folder / "README.md").read_text()
    assert "videogpt train-vqvae" in card and "videogpt make-dataset mixture" in card
    # A camera move over a test-only photograph (never trained on): far better than a world's codec.
    frames = read_video(REPO / "demo" / "examples" / "photo-camera-test-clip.mp4")[:16]
    codecs = [load_codec(folder), load_codec(CHECKPOINTS / "pusher")]
    _, results, _ = compare_codecs(codecs, frames, resolution=64)
    general, pusher_codec = results
    assert general.psnr >= 23.0 and general.psnr > pusher_codec.psnr + 5


@pytest.mark.parametrize("world", WORLD_MODELS)
def test_world_models_roll_their_world_forward_from_a_test_frame(world):
    from demo.action_presets import preset_actions, presets_for
    from videogpt_core.io.video_io import read_image

    pipeline = videogpt_core.load_pipeline(CHECKPOINTS / world, threads=1)
    cfg = pipeline.config
    assert cfg.action_dim == WORLD_MODELS[world] and not cfg.n_classes
    assert (cfg.n_cond_frames, cfg.frames_per_latent) == (0, 1) and pipeline.vqvae.config.per_frame
    card = (REPO / "checkpoints" / world / "README.md").read_text()
    assert re.search(r"--what recon,prior,world --world-samples \d+", card) and "ROLLOUTS.png" in card
    start = read_image(REPO / "demo" / "examples" / f"{world}-test-0.png")
    actions = preset_actions(presets_for(world)[0], 8, cfg.action_dim, world=world, action_range=cfg.action_range)
    frames = pipeline.generate(frames=start, actions=actions, n_frames=8, seed=0).frames[0]
    assert frames.shape == (8, 64, 64, 3) and frames.std() > 5  # not blank
    first = psnr_per_frame(to_model_video(start[None])[None], to_model_video(frames[:1])[None]).item()
    codec, _ = pipeline.reconstruct(to_model_video(start[None])[None])
    assert (frames[0] == codec[0, 0]).all(), first  # frame 1 is the codec's reconstruction of the given frame

