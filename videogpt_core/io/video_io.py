"""Read any video or image into uint8 (T, H, W, 3) / (H, W, 3) arrays; write H.264 mp4, gif and avi.

This is the pixel boundary of the package: everything outside it sees numpy uint8 RGB frames.
"""
from __future__ import annotations

import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, ImageSequence

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mov", ".gif", ".mkv", ".m4v")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
DEFAULT_MAX_IMAGE_PIXELS = 20_000_000

PathLike = Union[str, Path]


class VideoReadError(ValueError):
    """A file that is not a readable video (or too short for what was asked); names the file."""


@dataclass(frozen=True)
class VideoMetadata:
    """What a container claims about a video, read without decoding it (n_frames may be wrong)."""

    n_frames: int | None
    fps: float | None
    width: int
    height: int


def existing_file(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video or image file not found: {path}")
    if not path.is_file():
        raise VideoReadError(f"{path} is a folder, not a video or image file")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path} is an empty file (0 bytes), not a video or image")
    return path


# ----------------------------------------------------------------------------- reading videos


def video_metadata(path: PathLike) -> VideoMetadata:
    """Frame count, fps and size from the container header (cheap: nothing is decoded).

    The frame count is a hint: containers may lack it (None) or overstate it (truncated files).
    """
    path = existing_file(path)
    if path.suffix.lower() == ".gif":
        try:
            with Image.open(path) as image:
                return VideoMetadata(getattr(image, "n_frames", 1), _gif_fps(image), *image.size)
        except (OSError, SyntaxError) as error:
            raise VideoReadError(f"{path} is not a readable GIF ({error})") from error
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoReadError(f"{path} is not a readable video (OpenCV could not open it)")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    return VideoMetadata(count if count > 0 else None, fps if fps > 0 else None, width, height)


def _gif_fps(image: Image.Image) -> float | None:
    duration_ms = image.info.get("duration")
    return 1000.0 / duration_ms if duration_ms else None


def read_video(path: PathLike, max_frames: int | None = None, start_frame: int = 0) -> np.ndarray:
    """Decode a video file (mp4/avi/webm/mov/mkv/gif) into uint8 RGB frames (T, H, W, 3).

    Reads frames start_frame .. start_frame + max_frames - 1 (or to the end). OpenCV decodes first;
    imageio-ffmpeg's ffmpeg is the fallback for containers OpenCV's build cannot open; GIFs go
    through Pillow. Raises VideoReadError (a ValueError) naming the file when nothing can be read.
    A file that ends early (truncated) yields the frames that could be decoded.
    """
    path = existing_file(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    if start_frame < 0:
        raise ValueError(f"start_frame must be >= 0, got {start_frame}")
    if path.suffix.lower() == ".gif":
        frames = _read_gif(path, max_frames, start_frame)
    else:
        frames = _read_opencv(path, max_frames, start_frame)
        if frames is None:
            frames = _read_ffmpeg(path, max_frames, start_frame)
    if not frames:
        where = f" from frame {start_frame} on" if start_frame else ""
        raise VideoReadError(f"{path} has 0 decodable frames{where}; is it a complete video file?")
    return np.stack(frames)


def _read_opencv(path: Path, max_frames: int | None, start_frame: int) -> list[np.ndarray] | None:
    """Frames via OpenCV, or None when OpenCV cannot open the file or decodes nothing at all."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        # grab() decodes without colour conversion: exact (unlike seeking by frame index) and cheap.
        for skipped in range(start_frame):
            if not capture.grab():
                return [] if skipped else None
        frames = []
        while max_frames is None or len(frames) < max_frames:
            ok, frame_bgr = capture.read()
            if not ok or frame_bgr is None:
                break
            if frame_bgr.ndim == 2:
                frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
            frames.append(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames and start_frame == 0:
        return None  # let ffmpeg try: OpenCV opened it but could not decode this codec
    return frames


def _read_ffmpeg(path: Path, max_frames: int | None, start_frame: int) -> list[np.ndarray]:
    import imageio_ffmpeg

    frames: list[np.ndarray] = []
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        width, height = meta["size"]
        for index, raw in enumerate(reader):
            if index < start_frame:
                continue
            frames.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy())
            if max_frames is not None and len(frames) >= max_frames:
                break
    except (OSError, RuntimeError, KeyError, StopIteration, ValueError) as error:
        if not frames:
            raise VideoReadError(f"{path} is not a readable video ({_first_line(error)})") from error
    finally:
        reader.close()
    return frames


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _read_gif(path: Path, max_frames: int | None, start_frame: int) -> list[np.ndarray]:
    frames = []
    try:
        with Image.open(path) as image:
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                if index < start_frame:
                    continue
                frames.append(_pil_to_rgb(frame, background=(255, 255, 255)))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (OSError, SyntaxError, EOFError) as error:
        if not frames:
            raise VideoReadError(f"{path} is not a readable GIF ({error})") from error
    return frames


# ----------------------------------------------------------------------------- reading images


def read_image(
    image: PathLike | np.ndarray | Image.Image,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Any image (file path, numpy array or PIL image) as uint8 RGB (H, W, 3).

    Transparency is flattened onto `background` (white by default, as image viewers show it);
    grayscale is expanded to three channels; palette images are expanded; EXIF rotation of
    files is applied. Images with more than `max_pixels` pixels are refused before decoding.
    Arrays may be uint8, bool, 16-bit, or float in [0, 1], shaped (H, W), (H, W, 1|3|4).
    """
    if isinstance(image, (str, Path)):
        path = existing_file(image)
        try:
            with warnings.catch_warnings():
                # Our own, lower limit below replaces Pillow's decompression-bomb warning.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as opened:
                    _check_pixels(opened.size[0], opened.size[1], max_pixels, str(path))
                    opened = ImageOps.exif_transpose(opened)
                    return _pil_to_rgb(opened, background)
        except Image.DecompressionBombError as error:
            raise ValueError(f"{path} is too large to decode safely ({error})") from error
        except (OSError, SyntaxError) as error:
            raise ValueError(f"{path} is not a readable image ({error})") from error
    if isinstance(image, Image.Image):
        _check_pixels(image.size[0], image.size[1], max_pixels, "the image")
        return _pil_to_rgb(image, background)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, max_pixels, background)
    raise TypeError(f"read_image takes a path, numpy array or PIL image, not {type(image).__name__}")


def _check_pixels(width: int, height: int, max_pixels: int, name: str) -> None:
    if width * height > max_pixels:
        raise ValueError(
            f"{name} is {width}x{height} = {width * height / 1e6:.1f} MP, over the limit of "
            f"{max_pixels / 1e6:.1f} MP; downscale it first (or raise max_pixels)"
        )
    if width < 1 or height < 1:
        raise ValueError(f"{name} is empty ({width}x{height})")


def _pil_to_rgb(image: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Pillow's own conversion of 16-bit / int / float images to 8 bits clips instead of scaling.
        return _array_to_rgb(np.asarray(image), max_pixels=None, background=background)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return _flatten_alpha(np.asarray(image.convert("RGBA")), background)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _array_to_rgb(array: np.ndarray, max_pixels: int | None, background: tuple[int, int, int]) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {array.shape}")
    if max_pixels is not None:
        _check_pixels(array.shape[1], array.shape[0], max_pixels, "the image array")
    array = _to_uint8(array)
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=-1)
    if array.shape[-1] == 4:
        return _flatten_alpha(array, background)
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array.astype(np.float32) / 257.0).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if array.min() >= 0 and array.max() <= 255:
            return array.astype(np.uint8)
        if array.min() >= 0 and array.max() <= 65535:
            return (array.astype(np.float32) / 257.0).round().astype(np.uint8)
    raise ValueError(f"image arrays must be uint8, uint16, bool or float in [0, 1]; got {array.dtype}")


def _flatten_alpha(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32)
    flat = rgb * alpha + np.asarray(background, np.float32) * (1.0 - alpha)
    return flat.round().astype(np.uint8)


# ----------------------------------------------------------------------------- writing


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be a non-empty (T, H, W, 3) array; got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (convert with from_model_video); got {frames.dtype}")
    return frames


def _check_fps(fps: float) -> float:
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return float(fps)


def upscale_nearest(frames: np.ndarray, scale: int) -> np.ndarray:
    """Repeat each pixel scale x scale times, so tiny generated videos stay sharp when enlarged."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    scale = int(scale)
    if scale == 1:
        return frames
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Repeat the last row / column where a size is odd: 4:2:0 chroma needs even sizes."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def write_mp4(path: PathLike, frames: np.ndarray, fps: float, scale: int = 1, crf: int = 18) -> Path:
    """Write uint8 (T, H, W, 3) frames as H.264 / yuv420p mp4 with +faststart (plays in browsers).

    Uses imageio-ffmpeg's bundled ffmpeg. Frames are upscaled by the integer `scale` with
    nearest neighbour; an odd width/height is padded by repeating the last row/column because
    yuv420p needs even sizes. `crf` is x264's quality (lower is better; 18 is near-lossless).
    """
    import imageio_ffmpeg

    frames = upscale_nearest(_check_frames(frames), scale)
    fps = _check_fps(fps)
    frames = _pad_to_even(frames)
    height, width = frames.shape[1:3]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-",
        "-an", "-c:v", "libx264", "-preset", "medium", "-crf", str(int(crf)),
        "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path),
    ]  # fmt: skip
    result = subprocess.run(command, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"ffmpeg could not write {path}: {message}")
    return path


def write_gif(path: PathLike, frames: np.ndarray, fps: float, scale: int = 1) -> Path:
    """Write uint8 (T, H, W, 3) frames as an endlessly looping GIF (Pillow).

    GIF timing has 10 ms steps, so fps is rounded; Pillow merges identical consecutive frames
    into one longer frame (it plays the same, but reads back with fewer frames).
    """
    frames = upscale_nearest(_check_frames(frames), scale)
    fps = _check_fps(fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in frames]
    duration_ms = max(10, int(round(100.0 / fps)) * 10)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def write_avi(path: PathLike, frames: np.ndarray, fps: float) -> Path:
    """Write uint8 (T, H, W, 3) frames as Motion-JPEG AVI with OpenCV (the UCF-101 container).

    Odd sizes are padded to even ones (repeating the edge), as MJPG's 4:2:0 chroma needs.
    """
    import cv2

    frames = _pad_to_even(_check_frames(frames))
    fps = _check_fps(fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open {path} for writing MJPG AVI")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
