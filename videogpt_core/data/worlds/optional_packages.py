"""Import the simulators behind the optional worlds (vizdoom, fetchpush) only when one is rendered, with an
error that names the install command: the library core and the demo never need them."""
from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_COMMAND = 'pip install -e ".[worlds]"'


def import_world_package(module: str, world: str) -> ModuleType:
    """`import module`, or an ImportError saying that `world` needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"the {world!r} world needs the simulator package {module!r}, which could not be imported ({error}); "
            f"install the optional simulators with: {INSTALL_COMMAND}"
        ) from error
