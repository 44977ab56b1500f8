"""What a written video holds, as ffmpeg describes its first video stream (to check what write_mp4 produced)."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from videogpt_core.io.video_io import PathLike, VideoReadError, existing_file


@dataclass(frozen=True)
class StreamInfo:
    """The first video stream as ffmpeg describes it."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float | None


_STREAM_LINE = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<codec>\w+)(?P<rest>.*)")
_PIX_FMT = re.compile(r"^[^,]*,\s*(?P<pix_fmt>[a-z0-9_]+)")
_SIZE = re.compile(r"(?P<width>\d{1,5})x(?P<height>\d{1,5})")
_FPS = re.compile(r"(?P<fps>[\d.]+) fps")


def probe_stream(path: PathLike) -> StreamInfo:
    """Codec, pixel format, size and fps of the first video stream, from `ffmpeg -i` (bundled ffmpeg)."""
    import imageio_ffmpeg

    path = existing_file(path)
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    for line in result.stderr.splitlines():
        match = _STREAM_LINE.search(line)
        if not match:
            continue
        rest = match.group("rest")
        # Drop the "(High) (avc1 / 0x31637661)" style groups before reading the comma fields.
        flat = re.sub(r"\([^()]*\)", "", rest)
        pix_fmt = _PIX_FMT.search(flat)
        size = _SIZE.search(flat)
        fps = _FPS.search(rest)
        return StreamInfo(
            codec=match.group("codec"),
            pix_fmt=pix_fmt.group("pix_fmt") if pix_fmt else "",
            width=int(size.group("width")) if size else 0,
            height=int(size.group("height")) if size else 0,
            fps=float(fps.group("fps")) if fps else None,
        )
    raise VideoReadError(f"{path} has no video stream that ffmpeg can read")
