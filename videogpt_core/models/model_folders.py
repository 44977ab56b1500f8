"""Which folder holds which model: the one set of rules by which every command, the evaluation and the demo
turn a path into a pipeline folder or a codec (VQ-VAE) folder.

- A pipeline folder holds `vqvae/` and `prior/`.
- A codec folder is a VQ-VAE folder (config.json + model.safetensors). A folder *holds* a codec when it is one,
  or when its `vqvae/` is one (a pipeline folder, or a folder that ships only the codec).
- A training run folder holds its exported model in `model/`: a VQ-VAE folder (`train-vqvae`) or a pipeline
  folder (`train-prior`); a run folder is taken for the model inside.
- Searching (`find_*`): each given path is a folder of the kind, or a folder of them searched one deep. A model
  is named after its folder; a `vqvae/` or `model/` folder given on its own is named after the folder around it.

Only paths are resolved here; loading (and the messages about a folder's contents) is pretrained.py's.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from videogpt_core.models.pretrained import CONFIG_NAME

__all__ = ["NotAModelFolder", "codec_folder", "codec_folder_in", "find_codec_folders", "find_pipeline_folders",
           "is_pipeline_folder", "model_name", "pipeline_folder", "pipeline_folder_in"]

PIPELINE_PARTS = ("vqvae", "prior")
RUN_MODEL_DIR = "model"  # where a training run exports its model (training/run_folder.py writes it)
PIPELINE_EXPECTED = "a pipeline folder (vqvae/ + prior/) or a training run folder holding one in model/"
CODEC_EXPECTED = ("a VQ-VAE folder (config.json + model.safetensors), a folder holding one in vqvae/ (e.g. a "
                  "pipeline folder) or a training run folder (model/)")


class NotAModelFolder(FileNotFoundError, ValueError):
    """The folder exists but holds no model of the kind asked for: the expected files are missing (hence a
    FileNotFoundError) and the argument is wrong (hence a ValueError), so callers catching either see it."""


def is_pipeline_folder(path: Path) -> bool:
    return all((path / part).is_dir() for part in PIPELINE_PARTS)


def pipeline_folder_in(folder: str | os.PathLike) -> Path | None:
    """The pipeline folder that `folder` is or holds (a run's model/), or None."""
    folder = Path(folder)
    for candidate in (folder, folder / RUN_MODEL_DIR):
        if is_pipeline_folder(candidate):
            return candidate
    return None


def codec_folder_in(folder: str | os.PathLike) -> Path | None:
    """The VQ-VAE folder that `folder` is or holds (its vqvae/, a run's model/ or model/vqvae/), or None. A
    vqvae/ folder counts even when its files are missing: loading it then says which one."""
    folder = Path(folder)
    for candidate in (folder, folder / RUN_MODEL_DIR):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
        if (candidate / "vqvae").is_dir():
            return candidate / "vqvae"
    return None


def model_name(folder: str | os.PathLike) -> str:
    """The name a model goes by: its folder's, or for a vqvae/ or model/ folder the name of the folder around
    it (checkpoints/pusher/vqvae is 'pusher'). Symbolic links are kept, so a linked folder keeps its name."""
    named = _named_folder(Path(folder))
    return named.name


def _named_folder(folder: Path) -> Path:
    absolute = Path(os.path.abspath(folder))
    return absolute.parent if absolute.name in ("vqvae", RUN_MODEL_DIR) else absolute


def _existing_folder(path: str | os.PathLike, expected: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: no such checkpoint folder {path}; give {expected}")
    if not path.is_dir():
        raise ValueError(f"{path} is a file; give a folder: {expected}")
    return path


def pipeline_folder(path: str | os.PathLike) -> Path:
    """The pipeline folder at `path` (or in a run's model/), or an error saying what the folder lacks."""
    folder = _existing_folder(path, PIPELINE_EXPECTED)
    found = pipeline_folder_in(folder)
    if found is None:
        missing = [part for part in PIPELINE_PARTS if not (folder / part).is_dir()]
        raise NotAModelFolder(f"{folder}: not a pipeline folder (no {' and no '.join(f'{p}/' for p in missing)} "
                              f"inside); a pipeline folder holds vqvae/ and prior/")
    return found


def codec_folder(path: str | os.PathLike) -> Path:
    """The VQ-VAE folder that `path` is or holds, or an error saying which folders would do."""
    folder = _existing_folder(path, CODEC_EXPECTED)
    found = codec_folder_in(folder)
    if found is None:
        raise NotAModelFolder(f"{folder} holds no codec: neither {CONFIG_NAME} (a VQ-VAE folder) nor vqvae/ (a "
                              f"pipeline folder) nor {RUN_MODEL_DIR}/ (a training run); give {CODEC_EXPECTED}")
    return found


def find_pipeline_folders(paths: Iterable[str | os.PathLike], must_exist: bool = True) -> dict[str, Path]:
    """Model name -> pipeline folder, for each path that is a pipeline folder or a folder of them."""
    return _find(paths, must_exist, pipeline_folder_in, "a pipeline folder (vqvae/ + prior/) or a folder of them")


def find_codec_folders(paths: Iterable[str | os.PathLike], must_exist: bool = True) -> dict[str, Path]:
    """Codec name -> VQ-VAE folder, for each path that holds a codec or is a folder of such folders."""
    return _find(paths, must_exist, codec_folder_in,
                 "a VQ-VAE folder, a folder holding vqvae/, or a folder of them")


def _find(paths: Iterable[str | os.PathLike], must_exist: bool, folder_in: Callable[[Path], Path | None],
          expected: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for given in paths:
        path = Path(given).expanduser()
        if not path.is_dir():
            if must_exist:
                _existing_folder(path, expected)  # raises, saying what is wrong
            continue
        for holder, target in _holders(path, folder_in):
            named = _named_folder(holder)
            name = named.name
            if name in found and found[name].resolve() != target.resolve():
                name = f"{named.parent.name}/{name}"  # two models of the same name: keep both
            found.setdefault(name, target)
    return found


def _holders(path: Path, folder_in: Callable[[Path], Path | None]) -> list[tuple[Path, Path]]:
    """(folder named, model folder) for `path` itself, else for each of its subfolders that holds one."""
    target = folder_in(path)
    if target is not None:
        return [(path, target)]
    children = ((child, folder_in(child)) for child in sorted(path.iterdir()) if child.is_dir())
    return [(child, target) for child, target in children if target is not None]
