"""`videogpt ...`: the command-line entry point.

Each area of the package registers its own subcommands through `add_commands(subparsers)`;
this file only assembles them, so adding a command never touches another area's code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define `add_commands(subparsers)`; each subparser sets `func(args) -> int | None`.
COMMAND_MODULES = (
    "videogpt_core.models.reference",
    "videogpt_core.data.make_dataset",
    "videogpt_core.data.codes",
    "videogpt_core.training.cli",
    "videogpt_core.evaluation.cli",
    "videogpt_core.fvd.convert_i3d",
    "videogpt_core.cli.sample",
    "videogpt_core.cli.reconstruct",
    "videogpt_core.cli.space_export",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videogpt",
        description="VideoGPT: train, evaluate and sample video models "
        "(a VQ-VAE codec plus a conditional GPT prior over its codes).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed subcommand; a user error becomes a one-line message and exit status 2."""
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"videogpt {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
