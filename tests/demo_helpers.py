"""Shared by the demo tests: tiny random pipeline folders (one per conditioning type) and an in-process server."""
from __future__ import annotations

import socket
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
for _path in (TESTS_DIR, REPO_ROOT):  # tiny_models (tests/) and the demo package (repo root)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from tiny_models import LONGER_VQVAE, tiny_prior, tiny_vqvae  # noqa: E402

from videogpt_core.models.checkpoints import save_pipeline  # noqa: E402

# Three latent slices of 4x4 codes (2 frames each) per 6-frame window of 16x16: 48 tokens, milliseconds.
CONDITIONINGS = {
    "pusher-tiny": dict(n_cond_frames=1, frame_encoder_widths=(8, 8, 8, 12), frame_encoder_blocks=(1, 1, 1, 1),
                        action_dim=2, action_embed_dim=6, action_range=[[-3.0, 3.0], [-3.0, 3.0]]),
    "digits-tiny": dict(n_classes=3, class_names=["zero", "one", "two"], cond_drop_prob=0.1),
    "uncond-tiny": {},
}
WINDOW = LONGER_VQVAE["sequence_length"]  # frames per window
RESOLUTION = LONGER_VQVAE["resolution"]


def make_checkpoints(root: Path) -> dict[str, Path]:
    """One pipeline folder per conditioning type under root (frames + actions, class, unconditional)."""
    folders = {}
    for index, (name, conditioning) in enumerate(CONDITIONINGS.items()):
        vqvae = tiny_vqvae(index, sequence_length=WINDOW)
        prior = tiny_prior(vqvae, "none", seed=index + 1, **conditioning)
        folders[name] = save_pipeline(root / name, vqvae, prior)
    return folders


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_demo(paths: list[Path], codecs=None):
    """Launch the demo in this process on a free port; yields (demo, registry, url) and closes it. The
    Reconstruct tab offers `codecs` (a CodecRegistry; default: the pipelines' codecs)."""
    from demo.model_registry import ModelRegistry
    from demo.layout import build_demo, launch_options

    registry = ModelRegistry.from_paths(paths, device="cpu")
    demo = build_demo(registry, codecs=codecs)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                **launch_options())
    try:
        yield demo, registry, demo.local_url
    finally:
        demo.close()


def still_image(path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Path:
    """A small test image with a gradient (so resizing and cropping have something to move)."""
    from PIL import Image

    width, height = size
    ramp = np.linspace(0, 255, width * height, dtype=np.float64).reshape(height, width)
    rgb = np.stack([ramp, ramp[::-1], np.full_like(ramp, 128)], axis=-1).astype(np.uint8)
    image = Image.fromarray(rgb)
    if mode == "RGBA":
        alpha = np.full((height, width), 128, dtype=np.uint8)
        image = Image.fromarray(np.dstack([rgb, alpha]))  # 4 channels: RGBA
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


def moving_square_video(n_frames: int = 8, size: int = 24) -> np.ndarray:
    """(T, size, size, 3) uint8: a bright square sliding across a dark background."""
    frames = np.full((n_frames, size, size, 3), 20, dtype=np.uint8)
    for t in range(n_frames):
        x = (2 * t) % (size - 6)
        frames[t, 8:14, x: x + 6] = (230, 200, 40)
    return frames
