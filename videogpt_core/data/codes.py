"""The cached-codes data set: a frozen VQ-VAE's codes of every clip, written once, memory-mapped for prior training.

A cache is a folder: codes.npy (N, t, h, w) in the smallest unsigned dtype for n_codes,
frames.npy uint8 (N, n_cond_frames, H, W, 3) (each clip's first frames, for frame-conditioned
priors), one <key>.npy (N, ...) per other entry of the source's items (int64 when integer, else
float32; the item key "label" is stored as labels.npy), such as actions.npy (N, T, A) or
positions.npy (N, T, K, 2), and meta.json, written last (a folder without it is an interrupted run).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from videogpt_core.data.transforms import from_model_video, to_model_video
from videogpt_core.io.atomic_files import write_text_atomic

CACHE_FORMAT = "videogpt-code-cache"
CACHE_VERSION = 1
META_NAME = "meta.json"
# The arrays the cache makes itself; every other item entry of the source (but "video") is copied.
OWN_ARRAYS = ("codes", "frames")
# Item keys whose file has another name: caches on disk store the class ("label") as labels.npy.
FILE_NAMES = {"label": "labels"}
ITEM_KEYS = {name: key for key, name in FILE_NAMES.items()}
# Cache files recognised without a meta.json (an interrupted run has none); others come from its "files".
KNOWN_FILES = ("codes.npy", "frames.npy", "labels.npy", "actions.npy", "positions.npy")


def codes_dtype(n_codes: int) -> np.dtype:
    """The smallest unsigned integer dtype that holds code indices 0 .. n_codes - 1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n_codes - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"n_codes={n_codes} is too large for a code cache")


def _config_dict(config: Any) -> dict | None:
    if config is None:
        return None
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def _cache_files(out: Path) -> list[str]:
    """The files of a code cache in `out` (meta.json first): the fixed names and those meta.json lists."""
    listed: list[str] = []
    try:
        listed = [str(name) for name in json.loads((out / META_NAME).read_text()).get("files", [])]
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # no cache, an interrupted one, or an unreadable meta.json: the fixed names still count
    extra = [name for name in listed if name.endswith(".npy") and name not in KNOWN_FILES]
    names = [META_NAME, *KNOWN_FILES, *extra]
    # Only plain names: a meta.json must not point the clean-up outside the folder.
    return [name for name in names if Path(name).name == name and (out / name).is_file()]


def _prepare_folder(out: Path, overwrite: bool) -> None:
    if out.is_file():
        raise ValueError(f"{out} is a file; the code cache is written to a folder")
    existing = _cache_files(out)
    if existing and not overwrite:
        raise ValueError(
            f"{out} already holds a code cache ({', '.join(existing)}); choose another folder or overwrite "
            "(--overwrite)"
        )
    out.mkdir(parents=True, exist_ok=True)
    # meta.json goes first: a run that dies part way must not leave a cache that looks complete.
    for name in existing:
        (out / name).unlink(missing_ok=True)


@torch.no_grad()
def encode_dataset(
    vqvae: torch.nn.Module,
    dataset: Dataset,
    out_path: str | Path,
    batch_size: int = 16,
    n_cond_frames: int = 1,
    clips_per_video: int = 1,
    device: str | torch.device = "cpu",
    progress: bool = True,
    num_workers: int = 0,
    overwrite: bool = False,
) -> Path:
    """Encode every clip of `dataset` with a frozen VQ-VAE into a code cache folder at out_path.

    The data set is read `clips_per_video` times (row = pass * len(dataset) + index), so a
    data set with random windows (train=True) gives different clips per pass. Arrays are
    written incrementally into memory-mapped .npy files. The VQ-VAE is moved to `device` and
    used in eval mode (its previous train/eval mode is restored). Returns the folder.
    """
    from tqdm import tqdm

    if clips_per_video < 1 or batch_size < 1 or n_cond_frames < 0:
        raise ValueError("clips_per_video and batch_size must be >= 1 and n_cond_frames >= 0")
    if len(dataset) == 0:
        raise ValueError("the data set is empty: nothing to encode")
    if clips_per_video > 1 and getattr(dataset, "train", True) is False:
        warnings.warn("clips_per_video > 1 on a data set with fixed (train=False) windows repeats the same clips")
    out = Path(out_path)
    _prepare_folder(out, overwrite)

    n_videos = len(dataset)
    n_clips = n_videos * clips_per_video
    n_codes = int(vqvae.n_codes)
    was_training = vqvae.training
    vqvae.eval().to(device)
    arrays: dict[str, np.memmap] = {}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    try:
        with tqdm(total=n_clips, unit="clip", desc="encoding", disable=not progress) as bar:
            for clip_pass in range(clips_per_video):
                row = clip_pass * n_videos
                for batch in loader:
                    video = batch["video"]  # (B, 3, T, H, W)
                    codes = vqvae.encode(video.to(device)).cpu()  # (B, t, h, w)
                    if codes.numel() and (codes.min() < 0 or codes.max() >= n_codes):
                        raise ValueError(f"the VQ-VAE returned codes outside [0, {n_codes})")
                    if not arrays:
                        arrays = _open_arrays(out, batch, codes, n_clips, n_codes, n_cond_frames)
                    _write_rows(arrays, slice(row, row + len(codes)), batch, codes, n_cond_frames)
                    row += len(codes)
                    bar.update(len(codes))
        for array in arrays.values():
            array.flush()
        meta = _meta(vqvae, dataset, arrays, n_clips, n_videos, clips_per_video, n_cond_frames)
    finally:
        arrays.clear()  # drop the memmaps (closes the files)
        vqvae.train(was_training)
    write_text_atomic(out / META_NAME, json.dumps(meta, indent=2))
    return out


def _write_rows(arrays: dict[str, np.memmap], rows: slice, batch: dict, codes: torch.Tensor,
                n_cond_frames: int) -> None:
    """One batch's codes, conditioning frames and extra arrays (labels, actions, ...) into their rows."""
    arrays["codes"][rows] = codes.numpy()
    if n_cond_frames:
        arrays["frames"][rows] = from_model_video(batch["video"][:, :, :n_cond_frames])
    for name, array in arrays.items():
        if name not in OWN_ARRAYS:
            array[rows] = batch[ITEM_KEYS.get(name, name)].numpy()  # the memmap casts to its dtype


def _open_arrays(
    out: Path, batch: dict, codes: torch.Tensor, n_clips: int, n_codes: int, n_cond_frames: int
) -> dict[str, np.memmap]:
    """Create the .npy files, shaped from the first batch (written incrementally, never all in RAM)."""
    video = batch["video"]
    n_frames, height, width = video.shape[2:]
    if n_cond_frames > n_frames:
        raise ValueError(f"n_cond_frames={n_cond_frames} is more than the {n_frames} frames of a clip")

    def create(name: str, dtype, shape) -> np.memmap:
        return np.lib.format.open_memmap(out / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)

    arrays = {"codes": create("codes", codes_dtype(n_codes), (n_clips, *codes.shape[1:]))}
    if n_cond_frames:
        arrays["frames"] = create("frames", np.uint8, (n_clips, n_cond_frames, height, width, 3))
    for key, value in batch.items():
        if key == "video":
            continue
        name = FILE_NAMES.get(key, key)
        if name in arrays or name in OWN_ARRAYS:
            raise ValueError(
                f"the data set's item entry {key!r} would be stored as {name}.npy, which the code cache already "
                f"writes ({', '.join(f'{own}.npy' for own in OWN_ARRAYS)} and one file per other entry); rename it"
            )
        if not isinstance(value, torch.Tensor) or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(
                f"the data set's item entry {key!r} is {getattr(value, 'dtype', type(value).__name__)}; a code "
                "cache stores every entry but \"video\" as an integer or floating array"
            )
        dtype = np.float32 if value.is_floating_point() else np.int64
        arrays[name] = create(name, dtype, (n_clips, *value.shape[1:]))
    return arrays


def _meta(vqvae, dataset, arrays, n_clips: int, n_videos: int, clips_per_video: int, n_cond_frames: int) -> dict:
    latent_shape = list(arrays["codes"].shape[1:])
    expected = getattr(vqvae, "latent_shape", None)
    if expected is not None and tuple(expected) != tuple(latent_shape):
        warnings.warn(
            f"the clips gave latents {tuple(latent_shape)}, not the VQ-VAE's configured {tuple(expected)}: "
            "the data set's sequence length / resolution differ from the VQ-VAE's"
        )
    source = next((getattr(dataset, name) for name in ("path", "root") if hasattr(dataset, name)), None)
    split = getattr(dataset, "split", None) or ("train" if getattr(dataset, "train", True) else "test")
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "n_clips": n_clips,
        "n_videos": n_videos,
        "clips_per_video": clips_per_video,
        "n_codes": int(vqvae.n_codes),
        "latent_shape": latent_shape,
        "codes_dtype": str(arrays["codes"].dtype),
        "sequence_length": getattr(dataset, "sequence_length", None),
        "resolution": getattr(dataset, "resolution", None),
        "frame_stride": getattr(dataset, "frame_stride", 1),
        "n_cond_frames": n_cond_frames,
        "class_names": getattr(dataset, "class_names", None),
        "action_dim": int(getattr(dataset, "action_dim", 0) or 0),
        "fps": getattr(dataset, "fps", None),
        "world": getattr(dataset, "world", None),
        "source": None if source is None else str(Path(source).resolve()),
        "split": split,
        "files": sorted(f"{name}.npy" for name in arrays),
        "vqvae_config": _config_dict(getattr(vqvae, "config", None)),
    }


class CodeDataset(Dataset):
    """A code cache made by encode_dataset, memory-mapped (each DataLoader worker maps its own).

    Items: "codes" int64 (t, h, w); with cached frames "frames" float (3, n_cond_frames, H, W)
    in [-0.5, 0.5]; and every other cached array under its item key, as stored (float32 / int64):
    labels.npy as "label" int64 scalar, actions.npy as "actions" float32 (T, A), and so on.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"code cache not found: {self.path}")
        meta_path = self.path / META_NAME
        if not meta_path.is_file():
            if (self.path / "codes.npy").exists():
                raise ValueError(
                    f"{self.path} has codes.npy but no {META_NAME}: the encoding was interrupted; run it again"
                )
            raise ValueError(
                f"{self.path} is not a code cache (no {META_NAME}); make one with `videogpt encode-dataset`"
            )
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != CACHE_FORMAT:
            raise ValueError(f"{meta_path} is not a {CACHE_FORMAT} meta file")
        self.n_codes = int(self.meta["n_codes"])
        self.latent_shape = tuple(self.meta["latent_shape"])
        self.sequence_length = self.meta["sequence_length"]
        self.resolution = self.meta["resolution"]
        self.n_cond_frames = int(self.meta["n_cond_frames"])
        self.class_names = self.meta["class_names"]
        self.action_dim = int(self.meta["action_dim"])
        self.fps = self.meta.get("fps")
        self.vqvae_config = self.meta.get("vqvae_config")
        self.files = list(self.meta["files"])
        self._arrays: dict[str, np.ndarray] | None = None
        self._arrays_pid: int | None = None
        self._check_files()

    def _check_files(self) -> None:
        n_clips = int(self.meta["n_clips"])
        for name, array in self.arrays.items():
            if len(array) != n_clips:
                raise ValueError(f"{self.path / (name + '.npy')} has {len(array)} rows, meta.json says {n_clips}")
        if tuple(self.arrays["codes"].shape[1:]) != self.latent_shape:
            raise ValueError(
                f"{self.path / 'codes.npy'} holds {self.arrays['codes'].shape[1:]} latents, "
                f"meta.json says {self.latent_shape}"
            )

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """name -> read-only memory map, opened once per process."""
        if self._arrays is None or self._arrays_pid != os.getpid():
            arrays = {}
            for file_name in self.files:
                file = self.path / file_name
                if not file.is_file():
                    raise FileNotFoundError(f"{file} is missing from the code cache (meta.json lists it)")
                arrays[file_name.removesuffix(".npy")] = np.load(file, mmap_mode="r")
            self._arrays, self._arrays_pid = arrays, os.getpid()
        return self._arrays

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"], state["_arrays_pid"] = None, None  # pickling a memmap would copy it
        return state

    def __len__(self) -> int:
        return int(self.meta["n_clips"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} cached clips")
        arrays = self.arrays
        item = {"codes": torch.from_numpy(arrays["codes"][index].astype(np.int64))}
        if "frames" in arrays:
            item["frames"] = to_model_video(np.array(arrays["frames"][index]))
        for name, array in arrays.items():
            if name not in OWN_ARRAYS:
                item[ITEM_KEYS.get(name, name)] = torch.from_numpy(np.array(array[index]))
        return item

    def __repr__(self) -> str:
        return f"CodeDataset({self.path}, {len(self)} clips of {self.latent_shape} codes, n_codes={self.n_codes})"


# ----------------------------------------------------------------------------- command line


def _encode_dataset_command(args: argparse.Namespace) -> int:
    from videogpt_core.data import open_dataset
    from videogpt_core.models.checkpoints import load_vqvae

    vqvae = load_vqvae(args.checkpoint)
    config = vqvae.config
    sequence_length = args.sequence_length or getattr(config, "sequence_length", None)
    resolution = args.resolution or getattr(config, "resolution", None)
    if not sequence_length:
        raise ValueError("pass --sequence-length (the VQ-VAE config does not give one)")
    dataset = open_dataset(
        args.data, sequence_length, resolution, train=args.split == "train", frame_stride=args.frame_stride
    )
    print(f"encoding {dataset} x {args.clips_per_video} clip(s) per video on {args.device}")
    out = encode_dataset(
        vqvae, dataset, args.out, batch_size=args.batch_size, n_cond_frames=args.cond_frames,
        clips_per_video=args.clips_per_video, device=args.device, num_workers=args.num_workers,
        overwrite=args.overwrite,
    )  # fmt: skip
    cache = CodeDataset(out)
    print(f"wrote {len(cache)} clips of {cache.latent_shape} codes ({cache.meta['codes_dtype']}) to {out}")
    skipped = getattr(dataset, "skip_summary", lambda: None)()
    if skipped:
        print(skipped)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `videogpt encode-dataset`."""
    parser = subparsers.add_parser(
        "encode-dataset",
        help="encode a video data set with a frozen VQ-VAE into a code cache for prior training",
        description=(
            "Run a trained VQ-VAE once over a data set (a folder of videos, UCF-101, or a BAIR-layout "
            ".hdf5 file) and write its codes to a folder: codes.npy, frames.npy (first frames, for "
            "frame-conditioned priors), one .npy per other array of the data's clips (labels.npy, "
            "actions.npy, ...), and meta.json. "
            "Prior training then reads this folder (CodeDataset) and never touches pixels."
        ),
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a VQ-VAE folder (config.json + weights), or a pipeline folder containing vqvae/")
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="folder of videos, UCF-101 folder (with its split lists), or .hdf5/.h5 file")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the code cache to")
    parser.add_argument("--sequence-length", type=int, default=None,
                        help="frames per clip (default: the VQ-VAE's sequence_length)")
    parser.add_argument("--resolution", type=int, default=None,
                        help="frame size in pixels after resize + center crop (default: the VQ-VAE's)")
    parser.add_argument("--frame-stride", type=int, default=1,
                        help="take every N-th frame of the source (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="clips encoded at once; lower it when memory runs out (default: %(default)s)")
    parser.add_argument("--cond-frames", type=int, default=1,
                        help="first frames of each clip to keep for frame-conditioned priors, 0: none "
                             "(default: %(default)s)")
    parser.add_argument("--clips-per-video", type=int, default=1,
                        help="random clips taken from each video, useful with --split train (default: %(default)s)")
    parser.add_argument("--split", choices=("train", "test"), default="train",
                        help="which split: train (random clip windows) or test (first window of each video) "
                             "(default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the VQ-VAE runs, cpu or cuda (default: %(default)s, as this machine has)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader worker processes for decoding, 0: decode in this process "
                             "(default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a code cache already in --out")
    parser.set_defaults(func=_encode_dataset_command)
