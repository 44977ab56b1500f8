"""Example inputs for the demo: first frames and clips from the built-in worlds' test split.

The files in demo/examples/ are made by `python -m demo.examples` (deterministic: fixed test-split seeds). The
Reconstruct tab's longer clips come from the simulated worlds' test episodes and from the natural-video mixture's
camera source over a test-split photograph (write_reconstruct_examples).
"""
from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mov", ".gif")


# ----------------------------------------------------------------------------- example files


def caption_for(path: Path) -> str:
    """'pusher-test-3.png' -> 'pusher test 3': file names are the captions."""
    return path.stem.replace("-", " ").replace("_", " ")


def example_frames(directory: Path = EXAMPLES_DIR) -> list[tuple[str, str]]:
    """(path, caption) of every example first frame, sorted by name."""
    if not directory.is_dir():
        return []
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    return [(str(p), caption_for(p)) for p in paths]


def example_videos(directory: Path = EXAMPLES_DIR) -> list[str]:
    """Paths of the example clips for the Reconstruct tab, sorted by name."""
    if not directory.is_dir():
        return []
    return [str(p) for p in sorted(directory.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]


# ----------------------------------------------------------------------------- writing the example files


def write_examples(directory: Path = EXAMPLES_DIR, n_frames: int = 16) -> list[Path]:
    """First frames and clips of the built-in worlds' test split (fixed seeds), written into `directory`."""
    from PIL import Image

    from videogpt_core.data.worlds import get_world, split_seeds
    from videogpt_core.io.video_io import write_avi, write_gif, write_mp4

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pusher = get_world("pusher")
    for index, seed in enumerate(split_seeds("test", 4)):
        episode = pusher.generate(int(seed), n_frames)
        path = directory / f"pusher-test-{index}.png"
        Image.fromarray(episode.frames[0]).save(path)
        written.append(path)
        if index == 0:
            written.append(write_mp4(directory / "pusher-clip.mp4", episode.frames, pusher.fps))
        if index == 1:
            written.append(write_avi(directory / "pusher-clip.avi", episode.frames, pusher.fps))
    digits = get_world("digits")
    seen: set[int] = set()
    # Walk the test split until four different digits turned up, so the gallery shows variety.
    for index, seed in enumerate(split_seeds("test", 200)):
        episode = digits.generate(int(seed), n_frames)
        if episode.label in seen:
            continue
        path = directory / f"digits-{episode.label}-test-{index}.png"
        Image.fromarray(episode.frames[0]).save(path)
        written.append(path)
        if not seen:
            written.append(write_gif(directory / "digits-clip.gif", episode.frames, digits.fps))
        if len(seen) == 1:
            written.append(write_mp4(directory / "digits-clip.mp4", episode.frames, digits.fps))
        seen.add(episode.label)
        if len(seen) == 4:
            break
    return written + write_world_start_frames(directory) + write_reconstruct_examples(directory)


def write_world_start_frames(directory: Path = EXAMPLES_DIR, count: int = 4) -> list[Path]:
    """First frames of ViZDoom and FetchPush test episodes (the seeds `make-dataset` keeps for testing), the
    start frames of those worlds' models. A world whose optional package is missing is skipped with a note."""
    from PIL import Image

    from videogpt_core.data.worlds import get_world, split_seeds

    written: list[Path] = []
    for name in ("vizdoom", "fetchpush"):
        world = get_world(name)
        for index, seed in enumerate(split_seeds("test", count)):
            try:
                frame = world.generate(int(seed), 1).frames[0]
            except ImportError as error:
                print(f"skipped the {name} start frames: {error}")
                break
            path = directory / f"{name}-test-{index}.png"
            Image.fromarray(frame).save(path)
            written.append(path)
    return written


RECONSTRUCT_CLIP_FRAMES = 32  # two 16-frame windows: the tab shows how a codec works window by window
CAMERA_TEST_EPISODE = 4  # the camera over scikit-image's cat photograph ('chelsea'), two cut-outs crossing it


def write_reconstruct_examples(directory: Path = EXAMPLES_DIR, n_frames: int = RECONSTRUCT_CLIP_FRAMES) -> list[Path]:
    """Test-split clips for the Reconstruct tab: a ViZDoom and a FetchPush episode (64 px, their own frame rates)
    and a camera moving over a test-split photograph (128 px). A source whose optional package is missing is
    skipped with a note."""
    from videogpt_core.data.mixture.sources import MixtureSources
    from videogpt_core.data.worlds import get_world, split_seeds
    from videogpt_core.io.video_io import write_mp4

    directory.mkdir(parents=True, exist_ok=True)
    seed = int(split_seeds("test", 1)[0])
    written: list[Path] = []
    for name in ("vizdoom", "fetchpush"):
        world = get_world(name)
        try:
            frames = world.generate(seed, n_frames).frames
        except ImportError as error:
            print(f"skipped the {name} clip: {error}")
            continue
        written.append(write_mp4(directory / f"{name}-test-clip.mp4", frames, world.fps))
    try:
        camera_seed = int(split_seeds("test", CAMERA_TEST_EPISODE + 1)[CAMERA_TEST_EPISODE])
        frames, _, _ = MixtureSources("camera=1").episode(camera_seed, "test", n_frames, size=128)
    except ImportError as error:
        print(f"skipped the camera clip: {error}")
    else:
        written.append(write_mp4(directory / "photo-camera-test-clip.mp4", frames, 10))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the demo's example frames and clips (built-in worlds).")
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="folder to write into")
    parser.add_argument("--frames", type=int, default=16, help="frames per example clip")
    args = parser.parse_args(argv)
    paths = write_examples(args.out, args.frames)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files ({total / 1024:.0f} KiB) to {args.out}")


if __name__ == "__main__":
    main()
