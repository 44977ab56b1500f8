"""Natural images that ship inside installed Python packages, split once and for all between train and test.

Nothing is downloaded: the files are read from the installed packages scikit-image (`skimage/data`),
scikit-learn (`sklearn/datasets/images`) and matplotlib (`mpl-data/sample_data`); `pip install -e .[data]`
installs all three. The test split has images of its own (a cat, a flower, a portrait, a gravel texture and
the moon), so test episodes measure how a codec does on pictures it never saw, not on new crops of known ones.
Images of the same scene (the two motorcycle stereo views) stay on one side. Nothing comes from gradio's
`media_assets` folder: that folder is the project's held-out evaluation set.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

INSTALL_HINT = "pip install -e '.[data]'  (scikit-image, scikit-learn, matplotlib)"


@dataclass(frozen=True)
class ImageSource:
    name: str  # short unique name, e.g. "skimage/astronaut"
    package: str  # the importable package that ships the file
    folder: str  # the file's folder inside that package
    filename: str
    split: str  # "train" or "test"


def _skimage(filename: str, split: str) -> ImageSource:
    return ImageSource(f"skimage/{filename.rsplit('.', 1)[0]}", "skimage", "data", filename, split)


def _sklearn(filename: str, split: str) -> ImageSource:
    return ImageSource(f"sklearn/{filename.rsplit('.', 1)[0]}", "sklearn", "datasets/images", filename, split)


def _matplotlib(filename: str, split: str) -> ImageSource:
    return ImageSource(f"matplotlib/{filename.rsplit('.', 1)[0]}", "matplotlib", "mpl-data/sample_data",
                       filename, split)


# Photographs and natural textures only: drawings, binary masks, tiny icons and synthetic test patterns are left out.
CATALOGUE: tuple[ImageSource, ...] = (
    _skimage("astronaut.png", "train"),
    _skimage("coffee.png", "train"),
    _skimage("rocket.jpg", "train"),
    _skimage("motorcycle_left.png", "train"),
    _skimage("motorcycle_right.png", "train"),
    _skimage("hubble_deep_field.jpg", "train"),
    _skimage("retina.jpg", "train"),
    _skimage("ihc.png", "train"),
    _skimage("color.png", "train"),
    _skimage("camera.png", "train"),
    _skimage("brick.png", "train"),
    _skimage("grass.png", "train"),
    _skimage("coins.png", "train"),
    _skimage("cell.png", "train"),
    _skimage("clock_motion.png", "train"),
    _skimage("page.png", "train"),
    _skimage("text.png", "train"),
    _sklearn("china.jpg", "train"),
    _skimage("chelsea.png", "test"),
    _skimage("gravel.png", "test"),
    _skimage("moon.png", "test"),
    _sklearn("flower.jpg", "test"),
    _matplotlib("grace_hopper.jpg", "test"),
)


def image_path(source: ImageSource) -> Path:
    """Where the installed package keeps `source`'s file; ImportError naming the install command if absent."""
    if importlib.util.find_spec(source.package) is None:
        raise ImportError(f"{source.name} ships with the package {source.package!r}, which is not installed; "
                          f"install it with: {INSTALL_HINT}")
    path = Path(str(importlib.resources.files(source.package).joinpath(source.folder, source.filename)))
    if not path.is_file():
        raise FileNotFoundError(f"{source.name}: {path} is missing from the installed {source.package!r}")
    return path


def available_images(split: str) -> tuple[tuple[ImageSource, ...], tuple[str, ...]]:
    """The catalogue's images of `split` whose package is installed, and a note for each one left out."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    found, notes = [], []
    for source in CATALOGUE:
        if source.split != split:
            continue
        try:
            image_path(source)
        except (ImportError, FileNotFoundError) as error:
            notes.append(str(error))
            continue
        found.append(source)
    return tuple(found), tuple(notes)


@lru_cache(maxsize=None)
def load_pyramid(source: ImageSource) -> tuple[np.ndarray, ...]:
    """The image as float32 RGB in [0, 255], and halvings of it down to ~64 px: level k is 2**k times smaller.

    Views that shrink the image a lot are sampled from the level nearest their scale, so they are not aliased.
    """
    import cv2

    with Image.open(image_path(source)) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    levels = [rgb]
    while min(levels[-1].shape[:2]) >= 128:
        levels.append(cv2.pyrDown(levels[-1]))
    return tuple(levels)
