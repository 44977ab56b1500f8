"""The Reconstruct tab: one video through several VQ-VAE codecs side by side, with their scores.

Upload a clip (or pick an example), choose codecs (every `vqvae/` folder found under the checkpoint folders:
the pipelines' codecs and bare codec folders such as `checkpoints/general-codec-4x4x4/vqvae`) and a frame
size; the tab shows the original | one column per codec with its error heatmap underneath, the per-frame PSNR
of all codecs in one plot, and per codec SSIM, bits per clip before and after, the compression ratio and the
codebook entries this clip used. The measuring is `videogpt_core.codecs.reconstruct` (as
`videogpt reconstruct`), the picture `videogpt_core.codecs.comparison_video`, the folder rules
`videogpt_core.models.model_folders`; this file only lists the codecs, reads the upload and shows results.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from demo.display_images import codes_image, display_scale
from demo.examples import example_videos
from demo.input_checks import whole_number
from demo.model_registry import ModelRegistry
from demo.output_store import OutputStore
from demo.user_errors import DISMISS_ERRORS_JS, named_by_file_name, user_errors
from videogpt_core.cli.reconstruct import read_clip as read_video_clip
from videogpt_core.codecs.comparison_video import ERROR_SATURATION, side_by_side
from videogpt_core.codecs.reconstruct import Codec, compare_codecs, load_codec
from videogpt_core.io.video_io import VideoReadError, video_metadata, write_mp4
from videogpt_core.models.config import VQVAEConfig
from videogpt_core.models.devices import resolve_device
from videogpt_core.models.model_folders import find_codec_folders
from videogpt_core.models.vqvae import VQVAE

RESOLUTIONS = (64, 128)  # frame sizes offered: the codecs' training size and twice it
MAX_FRAMES = 64  # frames per request (4 windows of 16); a longer clip's first frames are used, and the page says so
DEFAULT_FRAMES = 32  # two 16-frame windows, as long as the example clips
MAX_CODECS = 6  # codecs per request (each one is a full encode + decode of the clip)
MAX_VIDEO_FRAME_PIXELS = 1920 * 1088  # whole frames are decoded before resizing: up to 1080p
FPS_RANGE = (1.0, 60.0)  # the comparison video's frame rate: the clip's own, kept within this range
GENERAL_CODEC_PREFIX = "general-codec"  # codecs trained on the broad natural-video mixture come first
VIDEO_FILE_TYPES = [".mp4", ".avi", ".webm", ".mov", ".gif", ".mkv", ".m4v"]
NO_CODEC_MESSAGE = ("No codec found: put VQ-VAE folders under `checkpoints/` (a pipeline folder's `vqvae/`, or "
                    "a bare codec folder such as `checkpoints/general-codec-4x4x4/vqvae`).")

HELP = f"""**Reconstruct** a video with one or more codecs: each encodes the clip into its grid of codes and
decodes it again, window by window of the clip length it was trained on. Columns: the original, then one per
codec; under each reconstruction its |error| (black: exact, yellow: {ERROR_SATURATION} grey levels or more).
Frames are resized and centre-cropped to the chosen size; at most {MAX_FRAMES} frames per request."""


# ----------------------------------------------------------------------------- finding codecs


def general_codecs_first(folders: dict[str, Path]) -> dict[str, Path]:
    """The codecs trained on the broad mixture first (the ones to try on any clip), then the others in order."""
    general = [name for name in folders if name.startswith(GENERAL_CODEC_PREFIX)]
    return {name: folders[name] for name in general + [name for name in folders if name not in general]}


@dataclass(frozen=True)
class CodecInfo:
    """What the tab shows about a codec before loading it: read from its config.json."""

    name: str
    path: Path  # the VQ-VAE folder
    config: VQVAEConfig

    @property
    def general(self) -> bool:
        return self.name.startswith(GENERAL_CODEC_PREFIX)

    def describe(self) -> str:
        t, h, w = self.config.downsample
        return (f"`{self.name}`: downsample {t}×{h}×{w}, {self.config.n_codes} codes, trained on "
                f"{self.config.sequence_length} frames of {self.config.resolution}×{self.config.resolution}")


class CodecRegistry:
    """The codecs the tab offers: configs read up front (a folder that is no VQ-VAE is listed as a problem,
    not served), weights loaded on first use and kept."""

    def __init__(self, folders: dict[str, Path], device: str | None = None):
        self.device = device
        self.infos: dict[str, CodecInfo] = {}
        self.problems: list[str] = []
        for name, folder in folders.items():
            try:
                self.infos[name] = CodecInfo(name, Path(folder), VQVAE.read_config(folder))
            except (ValueError, FileNotFoundError, TypeError) as error:
                self.problems.append(f"{folder}: {error}")
        self._codecs: dict[str, Codec] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path], device: str | None = None,
                   must_exist: bool = True) -> "CodecRegistry":
        """The codecs in `paths`, found by videogpt_core.models.model_folders' rules (as `videogpt reconstruct`)."""
        return cls(general_codecs_first(find_codec_folders(paths, must_exist)), device)

    @classmethod
    def from_models(cls, registry: ModelRegistry) -> "CodecRegistry":
        """The codecs of the pipelines a ModelRegistry serves."""
        return cls({name: info.path / "vqvae" for name, info in registry.infos.items()}, registry.device)

    @property
    def names(self) -> list[str]:
        return list(self.infos)

    def default_selection(self) -> list[str]:
        """The general codecs and every world's own, up to MAX_CODECS."""
        return self.names[:MAX_CODECS]

    def chosen(self, names) -> list[str]:
        """The request's codec names, checked: known, not repeated, 1 to MAX_CODECS of them."""
        if not self.infos:
            raise ValueError(NO_CODEC_MESSAGE)
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, (list, tuple)) or not names:
            raise ValueError(f"choose at least one codec: {', '.join(self.infos)}")
        unknown = [name for name in names if not isinstance(name, str) or name not in self.infos]
        if unknown:
            raise ValueError(f"unknown codec {unknown[0]!r}; choose from: {', '.join(self.infos)}")
        names = list(dict.fromkeys(names))
        if len(names) > MAX_CODECS:
            raise ValueError(f"{len(names)} codecs chosen; compare at most {MAX_CODECS} at once")
        return names

    def codec(self, name: str) -> Codec:
        codec = self._codecs.get(name)
        if codec is None:
            with self._lock:  # two first requests must not load the same weights twice
                codec = self._codecs.get(name)
                if codec is None:

                    codec = load_codec(self.infos[name].path, resolve_device(self.device))
                    codec.name = name
                    self._codecs[name] = codec
        return codec

    def status_message(self) -> str:
        lines = [] if self.infos else [f"**{NO_CODEC_MESSAGE}**"]
        lines += [f"- could not read codec {problem}" for problem in self.problems]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the upload


def upload_path(upload) -> str | None:
    """The server path of an upload (a path, a FileData-like dict or a one-file list), or None."""
    if isinstance(upload, dict):
        upload = upload.get("path")
    if isinstance(upload, (list, tuple)):
        upload = upload[0] if upload else None
    return None if upload in (None, "") else str(upload)


def _gif_canvas(path: str) -> tuple[int, int] | None:
    """A GIF's canvas (width, height) from its header, read before any decoder: Pillow refuses a huge canvas
    with its own 'decompression bomb' message."""
    try:
        with open(path, "rb") as file:
            header = file.read(10)
    except OSError:
        return None  # missing or unreadable: the video reader says so
    if header[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    return int.from_bytes(header[6:8], "little"), int.from_bytes(header[8:10], "little")


def read_upload(path: str, n_frames: int) -> tuple[np.ndarray, float, bool]:
    """(uint8 frames (T <= n_frames, H, W, 3), fps, whether the clip has more frames): only the first
    n_frames + 1 frames are ever decoded, and frames over 1080p are refused before decoding."""
    name = Path(path).name
    with named_by_file_name(path):
        canvas = _gif_canvas(path)
        if canvas is not None and canvas[0] * canvas[1] > MAX_VIDEO_FRAME_PIXELS:
            raise ValueError(f"{name} is a {canvas[0]}x{canvas[1]} GIF; videos up to 1080p are accepted, "
                             "downscale it first")
        try:
            meta = video_metadata(path)
        except VideoReadError:
            meta = None  # the reader tries its other decoders and says what is wrong
        if meta is not None and meta.width * meta.height > MAX_VIDEO_FRAME_PIXELS:
            raise ValueError(f"{name} is {meta.width}x{meta.height}; videos up to 1080p are accepted, "
                             "downscale it first")
        frames, fps = read_video_clip(path, 0, n_frames + 1, n_frames + 1)
    if len(frames) < 2:
        raise ValueError(f"{name} has {len(frames)} frame; a video needs at least 2 frames to reconstruct "
                         "(for a still image, use a video file)")
    if min(frames.shape[1:3]) < 2:
        raise ValueError(f"{name} has frames of {frames.shape[2]}x{frames.shape[1]} pixels, too small to "
                         "reconstruct; give frames at least 2 pixels on each side")
    fps = float(np.clip(fps, *FPS_RANGE))
    return frames[:n_frames], fps, len(frames) > n_frames


# ----------------------------------------------------------------------------- the comparison


@dataclass
class Comparison:
    video: str  # mp4: original | one column per codec, error heatmaps underneath
    psnr: pd.DataFrame  # long form for the plot: frame, psnr_db, codec
    scores: pd.DataFrame  # one row per codec
    codes: list[tuple[np.ndarray, str]]  # (image of the codes used, caption) per codec
    summary: str  # markdown: frames used, windows, a long clip's cap
    report: dict  # the JSON that `videogpt reconstruct` prints


# The scores table's columns, also shown before any run (an empty table would read "1 2 3"). Few and short, so
# the table fits its panel: the clip's raw bits (the same for every codec) and each codec's windows are in the
# summary, everything in the JSON.
SCORE_COLUMNS = ("codec", "PSNR (dB)", "block means (dB)", "SSIM", "bits", "ratio", "codes", "codes used",
                 "time (s)")


def _scores_table(report: dict) -> pd.DataFrame:
    rows = []
    for codec in report["codecs"]:
        t, h, w = codec["latent_shape"]
        rows.append({
            "codec": codec["name"], "PSNR (dB)": round(codec["psnr"], 2),
            "block means (dB)": round(codec["baseline_psnr"], 2), "SSIM": round(codec["ssim"], 3),
            "bits": round(codec["bits"]), "ratio": f"{codec['compression_ratio']:.1f}×",
            "codes": f"{t}×{h}×{w}", "codes used": f"{codec['codebook_usage']} of {codec['n_codes']}",
            "time (s)": round(codec["seconds"], 2),
        })
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


@user_errors
def reconstruct(codecs: CodecRegistry, store: OutputStore, upload, codec_names, resolution,
                n_frames=DEFAULT_FRAMES) -> Comparison:
    """Reconstruct the upload's first `n_frames` frames at `resolution` with each chosen codec."""
    path = upload_path(upload)
    if path is None:
        raise ValueError("upload a video (mp4, avi, webm, mov or gif) or pick an example clip first")
    names = codecs.chosen(codec_names)
    resolution = whole_number(resolution, "resolution")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {', '.join(map(str, RESOLUTIONS))} pixels, got {resolution}")
    n_frames = whole_number(n_frames, "frames", 2, MAX_FRAMES)
    frames, fps, longer = read_upload(path, n_frames)
    chosen = [codecs.codec(name) for name in names]
    device = next(chosen[0].vqvae.parameters()).device  # where the registry loaded the codecs
    clip, results, report = compare_codecs(chosen, frames, resolution, device)
    titles = [f"{result.name} {result.psnr:.1f}dB" for result in results]
    grid = side_by_side(clip, [result.frames for result in results], titles, scale=display_scale(resolution))
    video = write_mp4(store.new_folder() / "reconstruction.mp4", grid, fps)
    psnr = pd.DataFrame([{"frame": index + 1, "psnr_db": value, "codec": result.name}
                         for result in results for index, value in enumerate(result.psnr_per_frame)])
    codes = [(codes_image(result.codes, result.n_codes),
              f"{result.name}: {np.unique(result.codes).size} of {result.n_codes}") for result in results]
    clip_name = Path(path).name
    lines = [f"**{clip_name}**: {len(clip)} frames at {resolution}×{resolution}, {fps:g} fps; "
             f"{report['raw_bits']:,} bits of raw RGB."]
    if longer:
        lines.append(f"The clip is longer: only its first {len(clip)} frames were reconstructed (at most "
                     f"{MAX_FRAMES} per request here; `videogpt reconstruct CLIP --start S --frames N` does any "
                     "span).")
    lines.append("Each codec works window by window of its training length: " + ", ".join(
        f"{codec.name} {codec.vqvae.config.sequence_length} frames "
        f"({math.ceil(len(clip) / codec.vqvae.config.sequence_length)} windows)" for codec in chosen) + ".")
    lines.append("*block means*: the PSNR of keeping only the mean colour of each block of the codec's latent "
                 "grid (24 bits a block, no learning); a codec worth its training scores above it.")
    return Comparison(str(video), psnr, _scores_table(report), codes, "\n\n".join(lines),
                      {"input": clip_name, "fps": fps, **report})


# ----------------------------------------------------------------------------- the tab


def build_reconstruct_tab(codecs: CodecRegistry, store: OutputStore,
                          gpu: Callable[[Callable], Callable] = lambda fn: fn) -> None:
    """The Reconstruct tab and its event (call inside gr.Tabs); `gpu` wraps the work (spaces.GPU on ZeroGPU)."""
    names = codecs.names
    with gr.Tab("Reconstruct", id="reconstruct"):
        gr.Markdown(HELP)
        status = codecs.status_message()
        gr.Markdown(status, visible=bool(status), elem_id="recon-status")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Video (mp4, avi, webm, mov or gif)", file_types=VIDEO_FILE_TYPES,
                                 elem_id="recon-upload")
                clips = example_videos()
                if clips:
                    gr.Examples([[clip] for clip in clips], inputs=[upload], label="Example clips (test episodes)")
                chosen = gr.CheckboxGroup(names, value=codecs.default_selection(), label="Codecs",
                                          elem_id="recon-codecs")
                # In body text, not the checkbox group's info line: Gradio draws that faint and small.
                gr.Markdown("\n".join(f"- {info.describe()}" for info in codecs.infos.values()),
                            elem_id="recon-codec-notes")
                resolution = gr.Radio(list(RESOLUTIONS), value=RESOLUTIONS[0], label="Frame size (pixels)",
                                      elem_id="recon-resolution")
                n_frames = gr.Slider(2, MAX_FRAMES, value=DEFAULT_FRAMES, step=1,
                                     label="Frames to reconstruct (from the start)", elem_id="recon-frames")
                button = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct", interactive=bool(names))
            with gr.Column(scale=2):
                video = gr.Video(label="Original | one column per codec (|error| underneath)", autoplay=True,
                                 loop=True, interactive=False, elem_id="recon-video")
                plot = gr.LinePlot(x="frame", y="psnr_db", color="codec", title="PSNR per frame", x_title="frame",
                                   y_title="PSNR (dB)", color_title="codec", height=260, elem_id="psnr-plot")
                # Wrapped cells: the columns fit the panel instead of scrolling off its right edge.
                scores = gr.Dataframe(pd.DataFrame(columns=list(SCORE_COLUMNS)), label="Scores on this clip",
                                      interactive=False, wrap=True, elem_id="recon-scores")
                summary = gr.Markdown(elem_id="recon-summary")
                # Square tiles, three a row, all on screen: each codec's grid and its name readable at once.
                codes = gr.Gallery(label="Codes used (N of the codebook's M): one colour per code, time slices in "
                                         "reading order", columns=3, height="auto", allow_preview=True,
                                   object_fit="contain", elem_id="codes-map")
                with gr.Accordion("Scores as JSON (what `videogpt reconstruct` prints)", open=False):
                    report = gr.JSON(elem_id="recon-json")

    @gpu
    def run_reconstruct(video_file, codec_names, frame_size, frames):
        result = reconstruct(codecs, store, video_file, codec_names, frame_size, frames)
        return result.video, result.psnr, result.scores, result.summary, result.codes, result.report

    button.click(run_reconstruct, [upload, chosen, resolution, n_frames], [video, plot, scores, summary, codes, report],
                 api_name="reconstruct", show_progress_on=[video])
    button.click(None, js=DISMISS_ERRORS_JS)  # a new try: the last one's errors close
