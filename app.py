"""`python app.py`: the VideoGPT Gradio demo on http://127.0.0.1:7860, serving every pipeline folder under
checkpoints/ (or those given with --checkpoint), and in the Reconstruct tab every codec there (each pipeline's
vqvae/ and bare codec folders such as checkpoints/general-codec-4x4x4/vqvae). Also the Hugging Face Spaces
entry point (`demo` below)."""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_CHECKPOINTS = ROOT / "checkpoints"

# Uploads and Gradio's copies of results go to a private folder that is removed at exit (and pruned hourly
# while serving, see demo.layout.CACHE_CLEANUP). It must be set before Gradio creates any component.
if not os.environ.get("GRADIO_TEMP_DIR"):
    _uploads = tempfile.mkdtemp(prefix="videogpt-demo-uploads-")
    os.environ["GRADIO_TEMP_DIR"] = _uploads
    atexit.register(shutil.rmtree, _uploads, True)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from demo.model_registry import COMPILE_WHEN, ModelRegistry  # noqa: E402
from demo.layout import CONCURRENCY_LIMIT, build_demo, launch_options  # noqa: E402
from demo.reconstruct_tab import CodecRegistry  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The VideoGPT demo: generate, continue and reconstruct videos.")
    parser.add_argument("--checkpoint", action="append", type=Path, metavar="DIR",
                        help="a pipeline folder (vqvae/ + prior/), a codec folder (vqvae/ only) or a folder of "
                             f"them; repeatable (default: every one under {DEFAULT_CHECKPOINTS})")
    # Hugging Face Spaces sets GRADIO_SERVER_NAME=0.0.0.0; anywhere else the default is this machine only.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT") or 7860))
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available, else cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: CPU cores / concurrent generations, at least 1; token "
                             "by token sampling gains little from more and loses a lot when oversubscribed)")
    parser.add_argument("--compile", nargs="?", const="on-load", default="off", choices=COMPILE_WHEN,
                        help="when to torch.compile each model's decode step (sampling up to twice as fast on a "
                             "CPU; 20-90 s per model, less once cached; needs a C++ compiler, else the model is "
                             "served uncompiled): off (the default), on-load (bare --compile: before serving it), "
                             "background (serve at once, compile in a low-priority thread; generations that run "
                             "while it compiles are up to 10x slower, as the compiler holds Python's GIL)")
    parser.add_argument("--no-preload", action="store_true", help="load each model's weights on first use instead "
                                                                  "of at start")
    return parser.parse_args(argv)


def build(checkpoints: list[Path] | None = None, device: str | None = None,
          compile: str = "off") -> tuple[gr.Blocks, ModelRegistry]:
    """The demo over the given checkpoint folders (default: checkpoints/, which may be missing or empty)."""
    paths = checkpoints or [DEFAULT_CHECKPOINTS]
    registry = ModelRegistry.from_paths(paths, device=device, must_exist=bool(checkpoints), compile=compile)
    codecs = CodecRegistry.from_paths(paths, device=device, must_exist=bool(checkpoints))
    return build_demo(registry, codecs=codecs), registry


# Spaces (and `gradio app.py`) look for a module-level Blocks called `demo`.
demo, registry = build()


def main(argv: list[str] | None = None) -> None:
    global demo, registry
    args = parse_args(argv)
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // CONCURRENCY_LIMIT))
    if args.checkpoint or args.device:
        demo, registry = build(args.checkpoint, args.device, args.compile)
    else:  # the module-level demo over checkpoints/: no model is loaded yet, so it compiles as asked
        registry.compile = args.compile
    if not args.no_preload:
        for name in registry.names:
            if args.compile == "on-load":
                print(f"compiling the decode step of {name} (about a minute the first time; cached after)")
            try:
                registry.pipeline(name)
            except Exception as error:  # a broken model must not keep the others from being served
                print(f"warning: could not load model {name}: {error}", file=sys.stderr)
    # `docker stop` / Spaces send SIGTERM: exit normally so the temporary folders are removed (atexit); a second
    # SIGTERM while they are being removed is ignored rather than interrupting the clean-up with a traceback.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    print(f"serving {len(registry.names)} model(s): {', '.join(registry.names) or 'none'}")
    if args.compile == "background" and registry.compiler.state:
        print("compiling their decode steps in the background, one at a time (each samples faster once done)")
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options())


def _exit_on_sigterm(*_) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(0)


if __name__ == "__main__":
    main()
