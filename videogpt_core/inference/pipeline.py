"""The inference pipeline: a VQ-VAE and a prior with pre/post-processing, what the CLI and demo call.

`generate` returns uint8 frames; `stream` yields the codes and frames decoded so far after every latent
time slice. Videos longer than the prior's window are continued with a sliding window.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from videogpt_core.data.transforms import from_model_video, to_model_video
from videogpt_core.inference.codec_windows import pad_to_window, reconstruct_in_windows
from videogpt_core.inference.decode_step import DecodeStep, default_decode_mode
from videogpt_core.inference.non_finite import NonFiniteLogitsError
from videogpt_core.inference.sampling import generate_codes
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.inference.speculative import SpeculationStats, check_draft
from videogpt_core.inference.user_inputs import action_rows, class_index, class_names, model_frames, whole_number
from videogpt_core.models.checkpoints import load_models
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.devices import cpu_supports_bf16, resolve_device
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.quantization import check_quantize
from videogpt_core.models.sliding_window import given_slices, next_window_start, slices_for
from videogpt_core.models.vqvae import VQVAE


@dataclass
class StreamUpdate:
    codes: torch.Tensor  # (n, slices so far, h, w) int64, on the CPU
    frames: np.ndarray  # (n, frames decoded so far, H, W, 3) uint8
    tokens_done: int
    tokens_total: int
    seed: int
    # What speculative sampling did so far (draft_tokens set): passes, proposals scored / accepted, ...
    speculation: dict | None = None

    @property
    def finished(self) -> bool:
        return self.tokens_done == self.tokens_total


@dataclass
class GenerationResult:
    frames: np.ndarray  # (n, T, H, W, 3) uint8
    # (n, t, h, w) int64; past the first window, each slice's codes from the window it was sampled in
    codes: torch.Tensor
    seed: int
    speculation: dict | None = None  # see StreamUpdate


class VideoGPTPipeline:
    source: str = "this pipeline"  # named in errors about the model; from_pretrained sets the folder

    def __init__(self, vqvae: VQVAE, prior: VideoGPT, device: str | torch.device | None = None,
                 threads: int | None = None, amp_dtype: torch.dtype | None = None,
                 vqvae_bf16: bool | None = None, compile: bool = False, quantize: str | None = None,
                 draft_tokens: int | None = None, draft: str = "left", decode_mode: str | None = None):
        """device: 'cuda' when available, else 'cpu' by default. threads: torch CPU threads (batch-1 token
        decoding is often fastest with 1). amp_dtype: autocast dtype on CUDA (torch.bfloat16 /
        torch.float16). vqvae_bf16: decode frames in bfloat16 on the CPU (default: where the CPU has native
        bf16). compile: torch.compile the decode step (on CUDA with static shapes and CUDA graphs,
        mode='reduce-overhead'; on a CPU with a dynamic cache length, or for a model with per-frame actions,
        which Play steps, with the whole cache under a mask: every step then costs the same). Compiling takes
        20-60 s: `warm_up()` does it up front, else the first generations pay it. decode_mode: "eager",
        "compiled", "whole_cache" or "cuda_graph" (see decode_step.py), instead of what `compile` chooses.
        quantize: 'int8' samples with int8 prior weights (CPU only; faster at batch 1, logits within ~2 %).
        draft_tokens / draft: exact speculative sampling, k codes scored per verify pass (see speculative.py);
        off by default: on the shipped models at temperature 1 too few copied codes are accepted to pay."""
        if vqvae.latent_shape != prior.latent_shape or vqvae.n_codes != prior.n_codes:
            raise ValueError(f"the prior models {prior.latent_shape} grids of {prior.n_codes} codes, the VQ-VAE "
                             f"makes {vqvae.latent_shape} grids of {vqvae.n_codes}: they do not belong together")
        self.device = resolve_device(device)
        check_quantize(quantize, self.device)
        self.quantize = quantize
        check_draft(draft, draft_tokens)
        self.draft_tokens, self.draft = draft_tokens, draft
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.vqvae = vqvae.to(self.device).eval()
        self.prior = prior.to(self.device).eval()
        self.amp_dtype = amp_dtype if self.device.type == "cuda" else None
        if vqvae_bf16 is None:
            vqvae_bf16 = self.device.type == "cpu" and cpu_supports_bf16()
        self.vqvae_bf16 = vqvae_bf16 and self.device.type == "cpu"
        self.decode_step = DecodeStep.build(self.prior, decode_mode or self._decode_mode(compile))

    @property
    def compiled(self) -> bool:
        return self.decode_step.compiled

    def warm_up(self, batches: tuple[int, ...] = (1, 2)) -> None:
        """Compile the decode step now for these numbers of sequences (n samples, doubled under guidance)
        instead of in the first generation of each. A compiled CPU step covers every batch from 2 up with
        the same graphs, batch 1 with others. Does nothing for an uncompiled pipeline."""
        if self.compiled:
            self._warm(self.decode_step, batches)

    def compile_decode_step(self, batches: tuple[int, ...] = (1, 2)) -> None:
        """Compile a decode step for this device, warm it up, then use it in place of the current one.

        Meant for a background thread of a server that starts serving uncompiled: a generation running
        meanwhile keeps the step it started its window with and takes the compiled one at its next window
        (both read the same decoding state, and their samples agree, see tests/test_pipeline.py)."""
        if self.compiled:
            return
        step = DecodeStep.build(self.prior, self._decode_mode(True))
        self._warm(step, batches)
        self.decode_step = step

    def _decode_mode(self, compile: bool) -> str:
        return default_decode_mode(compile, self.device, played=bool(self.prior.config.action_dim))

    def _warm(self, decode_step: DecodeStep, batches: tuple[int, ...]) -> None:
        with torch.no_grad(), self.autocast():
            decode_step.warm(self.prior, batches, self.quantize)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs) -> "VideoGPTPipeline":
        vqvae, prior = load_models(directory)
        pipeline = cls(vqvae, prior, **kwargs)
        pipeline.source = str(directory)
        return pipeline

    # ---- properties the UI reads --------------------------------------------------------------------

    @property
    def config(self):
        return self.prior.config

    @property
    def sequence_length(self) -> int:
        return self.prior.config.sequence_length

    @property
    def resolution(self) -> int:
        return self.prior.config.resolution

    @property
    def class_names(self) -> list[str]:
        return class_names(self.prior.config)

    # ---- inputs (user_inputs.py: checked and converted for this model) ------------------------------

    def prepare_frames(self, frames) -> torch.Tensor:
        """uint8 image (H, W, 3) / video (K, H, W, 3) of any size -> (1, 3, K, res, res) in [-0.5, 0.5]."""
        return model_frames(frames, self.resolution).to(self.device)

    def label_index(self, label) -> int:
        return class_index(label, self.prior.config)

    def prepare_actions(self, actions, n_frames: int) -> torch.Tensor:
        """One action row per frame (n_frames, action_dim), within the trained range, on the device."""
        return action_rows(actions, n_frames, self.prior.config).to(self.device)

    # ---- generation ---------------------------------------------------------------------------------

    def autocast(self):
        """The autocast context the prior runs in on this device (none on the CPU)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """codes (n, t, h, w), decoded together -> uint8 frames (n, T, H, W, 3). The VQ-VAE was trained on
        windows of the prior's t slices and decodes longer grids badly (see `reconstruct`, `generate`)."""
        with torch.no_grad():
            if self.vqvae_bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    video = self.vqvae.decode(codes.to(self.device))
            else:
                with self.autocast():
                    video = self.vqvae.decode(codes.to(self.device))
        return from_model_video(video.float())

    def _whole_window(self, video: torch.Tensor) -> torch.Tensor:
        """The first window of `video` (n, 3, T, H, W), its last frame repeated if it is shorter."""
        return pad_to_window(video, self.config.sequence_length)  # the window the VQ-VAE was trained on

    def as_model_video(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 videos (n, T, H, W, 3) -> (n, 3, T, H, W) in [-0.5, 0.5] on the device."""
        return torch.stack([to_model_video(clip) for clip in frames]).to(self.device)

    def encode_prefix(self, video: torch.Tensor, n_slices: int) -> torch.Tensor:
        """Codes (n, n_slices, h, w) of given videos' first latent slices, encoded in a whole window.

        The encoder's convolutions and attention see across slices, so a few frames encoded alone get
        codes unlike those of the same frames inside a clip (measured: 4-8% equal on the shipped models).
        The window is filled with the given frames and then the last one repeated (44-84% equal).
        """
        return self.vqvae.encode(self._whole_window(video))[:, :n_slices]

    def reconstruct(self, video: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """A video (n, 3, T, res, res) in [-0.5, 0.5] through the VQ-VAE -> uint8 frames (n, T, H, W, 3) and
        codes (n, T / frames_per_latent, h, w); T must be a multiple of frames_per_latent.

        Encoded and decoded window by window of the training length (see codec_windows.py).
        """
        return reconstruct_in_windows(self.vqvae, video.to(self.device), self.decode)

    def stream(self, n: int = 1, frames=None, label=None, actions=None, *, options: SamplingOptions | None = None,
               seed: int | None = None, n_frames: int | None = None, **conditions) -> Iterator[StreamUpdate]:
        """Yield after every latent time slice; the last update holds the whole video (= `generate`)."""
        return self._run(n, frames, label, actions, options or SamplingOptions(), seed, n_frames, conditions,
                         progressive=True)

    def generate(self, n: int = 1, frames=None, label=None, actions=None, *, options: SamplingOptions | None = None,
                 seed: int | None = None, n_frames: int | None = None, **conditions) -> GenerationResult:
        """n samples of n_frames frames (default: the window), sampled with `options` (default: plain).

        conditions: any other condition of the model by its Conditions field name, one sample's value shared
        by the n samples (e.g. a per-clip vector as a list or tensor)."""
        last = None
        for last in self._run(n, frames, label, actions, options or SamplingOptions(), seed, n_frames, conditions,
                              progressive=False):
            pass
        return GenerationResult(frames=last.frames, codes=last.codes, seed=last.seed, speculation=last.speculation)

    def _named_errors(self, codes: Iterator) -> Iterator:
        """The sampler's codes; its non-finite-logits error names this pipeline's checkpoint."""
        try:
            yield from codes
        except NonFiniteLogitsError as error:
            raise NonFiniteLogitsError(f"{self.source}: {error}") from None

    def _run(self, n, frames, label, actions, options: SamplingOptions, seed, n_frames, conditions: dict,
             progressive: bool) -> Iterator[StreamUpdate]:
        """Check the request, then sample window after window (see models/sliding_window.py) until the video is
        whole."""
        request = self._request(n, frames, label, actions, options, seed, n_frames, conditions)
        with torch.no_grad(), self.autocast():
            progress = self._first_window(request)
            while True:
                yield from self._sample_window(request, progress, options, progressive)
                if progress.codes.shape[1] >= request.total_slices:
                    return
                self._slide(request, progress)

    def _request(self, n, frames, label, actions, options: SamplingOptions, seed, n_frames,
                 conditions: dict) -> "_Request":
        """The generation's inputs, checked and on the device (the errors say what to give instead)."""
        cfg = self.prior.config
        n = whole_number(n, "n (number of samples)", 1)
        n_frames = whole_number(cfg.sequence_length if n_frames is None else n_frames, "n_frames", 1)
        options.check_for(self.prior)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        seed = whole_number(seed, "seed", 0, 2**63 - 1)  # 1.5 would silently become seed 1
        total_slices = slices_for(n_frames, cfg.frames_per_latent)
        labels = None if label is None else torch.full((n,), self.label_index(label), device=self.device)
        if cfg.n_classes and labels is None:
            raise ValueError(f"label is required: this model is class-conditional ({self.class_names})")
        action_rows = None
        if actions is not None or cfg.action_dim:
            if actions is None:
                raise ValueError(f"actions ({n_frames}, {cfg.action_dim}) are required: this model is "
                                 "action-conditional")
            action_rows = self.prepare_actions(actions, n_frames)[None].expand(n, -1, -1)
        video = None if frames is None else self.prepare_frames(frames)
        conditions = Conditions.from_inputs(self.device, labels=labels, actions=action_rows,
                                            **self._shared_conditions(n, conditions)).padded(total_slices, cfg)
        return _Request(n, n_frames, total_slices, seed, torch.Generator(device=self.device).manual_seed(seed),
                        conditions, video, self._given_slices(video, total_slices))

    def _shared_conditions(self, n: int, conditions: dict) -> dict:
        """Other conditions, one sample's value each, as rows shared by the n samples."""
        named = {"frames", "labels", "actions", "prefix"}.intersection(conditions)
        if named:
            raise ValueError(f"give {sorted(named)} as frames= / label= / actions= (prefix codes come from frames)")
        rows = {name: torch.as_tensor(value, device=self.device) for name, value in conditions.items()}
        return {name: row[None].expand(n, *row.shape) for name, row in rows.items()}

    def _given_slices(self, video: torch.Tensor | None, total_slices: int) -> int:
        """Slices of the given frames kept as the first window's prefix; refuses frames the model cannot use."""
        cfg = self.prior.config
        fpl = cfg.frames_per_latent
        if video is None:
            if cfg.n_cond_frames:
                raise ValueError(f"frames are required: this model conditions on {cfg.n_cond_frames} first "
                                 "frame(s) (an image or video, any size)")
            return 0
        kept = given_slices(video.shape[2], fpl, self.prior.latent_shape[0], total_slices)
        if not cfg.n_cond_frames and not kept:
            raise ValueError(f"frames given, but this model is not frame-conditional; for video prediction "
                             f"give at least {fpl} frames")
        if cfg.n_cond_frames and video.shape[2] < cfg.n_cond_frames:
            raise ValueError(f"this model conditions on {cfg.n_cond_frames} first frames; got {video.shape[2]}")
        return kept

    def _first_window(self, request: "_Request") -> "_Progress":
        cfg, (h, w) = self.prior.config, self.prior.latent_shape[1:]
        n, video = request.n, request.video
        kept = None
        if request.prefix_slices:
            kept = self.encode_prefix(video, request.prefix_slices).expand(n, -1, -1, -1)
        cond_frames = None if not cfg.n_cond_frames else video[:, :, : cfg.n_cond_frames].expand(n, -1, -1, -1, -1)
        return _Progress(codes=torch.zeros(n, 0, h, w, dtype=torch.long, device=self.device), shown=None,
                         window_start=0, kept=kept, cond_frames=cond_frames, stats=SpeculationStats())

    def _sample_window(self, request: "_Request", progress: "_Progress", options: SamplingOptions,
                       progressive: bool) -> Iterator[StreamUpdate]:
        """Sample one window, appending its new slices to progress.codes and their frames to progress.shown."""
        fpl = self.prior.config.frames_per_latent
        t, h, w = self.prior.latent_shape
        start, n, kept = progress.window_start, request.n, progress.kept
        conditions = request.conditions.window(start, self.prior.config).replace(
            frames=progress.cond_frames, prefix=None if kept is None else kept.flatten(1))
        n_kept = 0 if kept is None else kept.shape[1]
        # The first window's prefix (given frames) belongs to the video's codes; a later window's kept slices
        # re-encode slices the video has already.
        first_new = n_kept if start else 0
        slices_needed = min(t, request.total_slices - start)
        tokens_total = request.total_slices * h * w
        for codes, done in self._named_errors(generate_codes(
                self.prior, n, conditions, options=options, generator=request.generator, quantize=self.quantize,
                draft_tokens=self.draft_tokens, draft=self.draft, stats=progress.stats, step=self.decode_step)):
            if done <= n_kept and start:
                continue  # slices carried over from the previous window were shown already
            progress.codes = torch.cat([progress.codes[:, :start + first_new], codes[:, first_new:done]], dim=1)
            window_done = done >= slices_needed
            if progressive or window_done:
                # A window is decoded whole, in the context its codes were sampled in; a later window adds only
                # the frames of its new slices.
                window_frames = self.decode(codes[:, :done])
                progress.shown = window_frames if not start else np.concatenate(
                    [progress.shown[:, : (start + n_kept) * fpl], window_frames[:, n_kept * fpl:]], axis=1)
            if progressive or progress.codes.shape[1] >= request.total_slices:
                yield StreamUpdate(progress.codes.cpu(), progress.shown[:, :request.n_frames],
                                   min(progress.codes.shape[1] * h * w, tokens_total), tokens_total, request.seed,
                                   progress.stats.as_dict() if self.draft_tokens else None)
            if window_done:
                return

    def _slide(self, request: "_Request", progress: "_Progress") -> None:
        """The next window continues the last t - 1 slices as a video prediction, its conditioning shifted along.
        A per-frame codec's codes of a frame are the frame's alone, so they are kept as sampled (as Play's
        window slides, WindowSampler.slid); other codecs' slices are re-encoded together from their frames, so
        the prior and the decoder see codes in their usual context."""
        cfg, t = self.prior.config, self.prior.latent_shape[0]
        fpl = cfg.frames_per_latent
        progress.window_start = next_window_start(progress.codes.shape[1], t)
        recent = None
        if t > 1 and self.vqvae.config.per_frame:
            progress.kept = progress.codes[:, progress.window_start:]
        elif t > 1:
            recent = self.as_model_video(progress.shown[:, progress.window_start * fpl:])
            progress.kept = self.encode_prefix(recent, t - 1)
        else:  # a one-slice window keeps nothing; it is conditioned on the last frames shown
            progress.kept = None
            recent = self.as_model_video(progress.shown[:, -cfg.n_cond_frames:]) if cfg.n_cond_frames else None
        if cfg.n_cond_frames:
            if recent is None:
                recent = self.as_model_video(progress.shown[:, progress.window_start * fpl:])
            progress.cond_frames = recent[:, :, : cfg.n_cond_frames]


@dataclass
class _Request:
    """One generation's checked inputs."""

    n: int
    n_frames: int
    total_slices: int
    seed: int
    generator: torch.Generator
    conditions: Conditions  # labels (n,) and actions (n, frames of whole windows, action_dim)
    video: torch.Tensor | None  # the given frames (1, 3, T, H, W)
    prefix_slices: int  # slices of the given frames kept as the first window's prefix


@dataclass
class _Progress:
    """Where a generation stands between windows."""

    codes: torch.Tensor  # (n, slices so far, h, w)
    shown: np.ndarray | None  # uint8 frames of those slices
    window_start: int  # the slice where the current window begins
    kept: torch.Tensor | None  # the current window's prefix codes (n, s, h, w)
    cond_frames: torch.Tensor | None
    stats: SpeculationStats


def load_pipeline(directory: str | os.PathLike, **kwargs) -> VideoGPTPipeline:
    """A pipeline from a folder holding vqvae/ and prior/ (see VideoGPTPipeline for the options)."""
    return VideoGPTPipeline.from_pretrained(directory, **kwargs)
