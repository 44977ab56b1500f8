"""A broad training mixture for general video codecs: photographs filmed by a synthetic camera, dead-leaves
video and the built-in worlds, seeded and deterministic, written by `videogpt make-dataset mixture`.

The photographs come from installed packages (`pip install -e '.[data]'`); see natural_images.py for which
images belong to the train and which to the test split.
"""
from .dataset import write_mixture_dataset
from .natural_images import CATALOGUE, ImageSource, available_images
from .sources import DEFAULT_SHARES, MixtureSources, parse_mix

__all__ = ["CATALOGUE", "DEFAULT_SHARES", "ImageSource", "MixtureSources", "available_images", "parse_mix",
           "write_mixture_dataset"]
