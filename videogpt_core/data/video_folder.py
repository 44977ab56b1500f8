"""Clips from any folder of video files, with class labels from sub-folder names.

Bad files (unreadable, truncated, not video, too short) are found lazily, skipped with a warning
and recorded in `skipped`; an epoch never stops on them.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from videogpt_core.data.transforms import ClipWindows, resize_center_crop, to_model_video
from videogpt_core.io.video_io import VIDEO_EXTENSIONS, VideoReadError, read_video, video_metadata

# What a bad file can raise while being read; anything else is a bug and propagates.
READ_ERRORS = (VideoReadError, OSError, EOFError, cv2.error)


class VideoList(NamedTuple):
    """The videos a data set draws from: paths, a label per path (or None), class names (or None)."""

    paths: list[Path]
    labels: list[int] | None
    class_names: list[str] | None


def list_videos(root: Path, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> VideoList:
    """Video files under root (recursive, sorted), labelled by folder when all sit in sub-folders."""
    extensions = tuple(extensions)
    paths = sorted(
        path
        for path in root.rglob("*")
        if path.suffix.lower() in extensions
        and path.is_file()
        # Hidden files include macOS "._name.mp4" resource forks, which are not videos.
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )
    folders = [path.parent.relative_to(root).as_posix() for path in paths]
    if not paths or any(folder == "." for folder in folders):
        return VideoList(paths, None, None)
    class_names = sorted(set(folders))
    label_of = {name: label for label, name in enumerate(class_names)}
    return VideoList(paths, [label_of[folder] for folder in folders], class_names)


class VideoFolderDataset(Dataset):
    """Random (train) or fixed (eval) clips from every video under `root`, searched recursively.

    When every video sits in a sub-folder, its class is that folder's path relative to root
    (classes sorted alphabetically, labels 0-based); otherwise there are no labels.
    Items: {"video": float (3, T, H, W) in [-0.5, 0.5], "label": int64 scalar (when labelled)}.
    Files are only opened when an item is read. A bad file is recorded in `skipped` as
    (path, reason), warned about once, and replaced by the next good video (deterministically:
    index + 1, index + 2, ...). After every len(dataset) items read in a process (an epoch
    without workers) new skips are summarised in one more warning; `skip_summary()` gives the
    line on demand. With DataLoader workers, each worker records (and warns about) its own.
    """

    def __init__(
        self,
        root: str | Path,
        sequence_length: int,
        resolution: int,
        frame_stride: int = 1,
        train: bool = True,
        extensions: Iterable[str] = VIDEO_EXTENSIONS,
        eval_seed: int | None = None,
    ):
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"video folder not found: {self.root}")
        if not self.root.is_dir():
            raise ValueError(f"{self.root} is a file; VideoFolderDataset takes a folder of videos")
        self.extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        unknown = set(self.extensions) - set(VIDEO_EXTENSIONS)
        if unknown:
            raise ValueError(f"unsupported video extensions {sorted(unknown)}; readable: {VIDEO_EXTENSIONS}")
        self.sequence_length = int(sequence_length)
        self.resolution = int(resolution)
        self.frame_stride = int(frame_stride)
        self.train = bool(train)
        self.windows = ClipWindows(self.sequence_length, self.frame_stride, self.train, eval_seed)
        self.action_dim = 0
        self.fps: float | None = None
        self.skipped: list[tuple[str, str]] = []
        self._bad: set[int] = set()
        self._frame_counts: dict[int, int] = {}  # learned per process, as items are read
        self._items_read = 0
        self._skips_summarised = 0

        videos = self._find_videos()
        if not videos.paths:
            raise ValueError(
                f"no videos ({', '.join(self.extensions)}) found under {self.root}"
                + (f"; {len(self.skipped)} listed file(s) were missing" if self.skipped else "")
            )
        self.paths, self.labels, self.class_names = videos
        self._skips_summarised = len(self.skipped)  # files found missing while listing were warned about

    # ------------------------------------------------------------------ listing

    def _find_videos(self) -> VideoList:
        """The videos to draw from; subclasses override this to list them another way."""
        return list_videos(self.root, self.extensions)

    # ------------------------------------------------------------------ items

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        index %= len(self)
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            if candidate in self._bad:
                continue
            try:
                item = self._item(candidate)
            except READ_ERRORS as error:
                self._skip(candidate, str(error))
                continue
            self._after_read()
            return item
        raise ValueError(
            f"none of the {len(self)} videos under {self.root} gave a clip of {self.sequence_length} "
            f"frames (stride {self.frame_stride}); first problems: {self.skipped[:3]}"
        )

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        clip = self._read_clip(index)
        item = {"video": to_model_video(resize_center_crop(clip, self.resolution))}
        if self.labels is not None:
            item["label"] = torch.tensor(self.labels[index], dtype=torch.int64)
        return item

    def _read_clip(self, index: int) -> np.ndarray:
        """uint8 (sequence_length, H, W, 3): one window of the video, every frame_stride-th frame."""
        path, span, stride = self.paths[index], self.windows.span, self.frame_stride
        n_frames = self._frame_counts.get(index)
        if n_frames is None:
            n_frames = video_metadata(path).n_frames
        if n_frames is not None and n_frames >= span:
            start = self.windows.start(n_frames, index)
            try:
                frames = read_video(path, max_frames=span, start_frame=start)
            except VideoReadError:
                frames = None  # e.g. the window starts past the end of a truncated file
            if frames is not None and len(frames) == span:
                self._frame_counts[index] = n_frames
                return frames[::stride]
        # The header's frame count is missing, too small or wrong (a truncated file): decode it all
        # once to learn the true length, which is then remembered.
        frames = read_video(path)
        self._frame_counts[index] = len(frames)
        if len(frames) < span:
            raise VideoReadError(
                f"{path} has {len(frames)} decodable frames, fewer than the {span} a clip of "
                f"{self.sequence_length} frames with stride {stride} needs"
            )
        start = self.windows.start(len(frames), index)
        return frames[start : start + span : stride]

    def _after_read(self) -> None:
        self._items_read += 1
        if self._items_read % len(self) == 0 and len(self.skipped) > self._skips_summarised:
            self._skips_summarised = len(self.skipped)
            warnings.warn(self.skip_summary(), stacklevel=3)

    def _skip(self, index: int, reason: str) -> None:
        self._bad.add(index)
        self.skipped.append((str(self.paths[index]), reason))
        warnings.warn(f"skipping video {self.paths[index]}: {reason}", stacklevel=3)

    # ------------------------------------------------------------------ reporting

    def skip_summary(self) -> str | None:
        """One line on the files skipped so far in this process (for the end of an epoch), or None."""
        if not self.skipped:
            return None
        return (
            f"{len(self.skipped)} of {len(self)} videos under {self.root} were skipped "
            f"(see dataset.skipped); first: {self.skipped[0][0]}: {self.skipped[0][1]}"
        )

    def __repr__(self) -> str:
        classes = f", {len(self.class_names)} classes" if self.class_names else ""
        return (
            f"{type(self).__name__}({self.root}, {len(self)} videos{classes}, "
            f"{self.sequence_length}x{self.resolution}px, stride {self.frame_stride}, "
            f"{'train' if self.train else 'eval'})"
        )
