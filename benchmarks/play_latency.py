"""Play in the browser: key press -> new frame painted, and frames per second while a key is held.

    python -m benchmarks.play_latency [--models pusher,vizdoom] [--presses 10] [--hold-s 5] [--compile off]

Serves the demo on the shipped models as `python app.py` does (CPU, torch threads as the app sets them) and drives
its Play tab in headless Chromium (Playwright): for each model, chosen in the page's Model picker, it starts from
the first example frame, presses keys one at a time (each press made while the world is idle, its frames played
out before the next) and then holds one key. The page measures each press from key down to its first new frame
painted on the screen's canvas. Reports medians with the machine's load average before and after (the figures
move with whatever else runs).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import time
from pathlib import Path

import torch

from benchmarks.common import report

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--headless", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 300_000  # a step on a busy machine may take a minute
KEYS = ("ArrowRight", "ArrowUp", "ArrowLeft")  # controls of every shipped world (vizdoom has no ArrowDown)
PLAY_OUT_MS = 800  # after a step, its frames play out at the world's rate before the next press
HOLD_STEPS = 3  # a key is held for at least this many steps (at the presses' median server time)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="pusher,vizdoom", help="comma-separated folders under checkpoints/")
    parser.add_argument("--presses", type=int, default=10, help="single key presses per model (default 10)")
    parser.add_argument("--hold-s", type=float, default=5.0,
                        help=f"seconds a key is held per model, at least {HOLD_STEPS} steps' time (default 5)")
    parser.add_argument("--compile", default="off", choices=("off", "on-load"),
                        help="as the app's --compile: off (the default of `python app.py`) or on-load")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: as the app, CPU cores / concurrent generations)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write the JSON here")
    return parser.parse_args(argv)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def open_play(browser, url: str, model: str):
    """A page of the demo with `model` chosen in the Model picker, on the Play tab, started from an example."""
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#model input").click()
    page.get_by_role("option", name=model).click()
    page.get_by_role("tab", name="Play").click()
    page.wait_for_function(f"() => document.querySelector('#play-examples').innerText.includes('{model}')",
                           timeout=TIMEOUT_MS)
    page.locator("#play-examples button.thumbnail-item").first.click()
    page.wait_for_function("() => window.videogptPlay && window.videogptPlay.episode", timeout=TIMEOUT_MS)
    return page


def figures(page) -> dict:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.videogptPlay))")


def presses(page, count: int) -> tuple[list[float], list[float]]:
    """Key down -> first new frame painted (ms) of `count` presses made while idle, and the server ms of each."""
    for index in range(count):
        key = KEYS[index % len(KEYS)]
        page.keyboard.down(key)
        page.keyboard.up(key)
        try:
            page.wait_for_function(f"() => window.videogptPlay.latencies.length >= {index + 1} && "
                                   "!window.videogptPlay.busy", timeout=TIMEOUT_MS)
        except Exception as error:
            status = page.locator("#play-screen .play-status").inner_text()
            raise RuntimeError(f"press {index + 1} showed no new frame (the page says: {status!r}; "
                               f"{figures(page)['errors']})") from error
        page.wait_for_timeout(PLAY_OUT_MS)
    stats = figures(page)
    return stats["latencies"][:count], stats["serverMs"][:count]


def hold(page, seconds: float) -> tuple[float, int, list[float]]:
    """Frames painted per second while a key is held (press to release), the frames, and the steps' server ms."""
    steps_before = figures(page)["steps"]
    held_from = page.evaluate("() => performance.now()")
    page.keyboard.down("ArrowRight")
    page.wait_for_timeout(seconds * 1000)
    held_to = page.evaluate("() => performance.now()")
    page.keyboard.up("ArrowRight")
    page.wait_for_function("() => !window.videogptPlay.busy", timeout=TIMEOUT_MS)
    stats = figures(page)
    painted = [t for t in stats["frameTimes"] if held_from <= t <= held_to]
    return len(painted) / ((held_to - held_from) / 1000), len(painted), stats["serverMs"][steps_before:]


def measure_model(browser, url: str, registry, model: str, args) -> dict:
    info = registry.info(model)
    page = open_play(browser, url, model)
    load_before = os.getloadavg()[0]
    latencies, server_ms = presses(page, args.presses)
    hold_s = max(args.hold_s, HOLD_STEPS * statistics.median(server_ms) / 1000)
    rate, painted, held_ms = hold(page, hold_s)
    readout = page.locator("#play-screen .play-readout").inner_text()
    page.close()
    return dict(model=model, frames_per_press=info.frames_per_latent, presses=len(latencies),
                key_to_frame_median_ms=round(statistics.median(latencies)),
                key_to_frame_range_ms=f"{round(min(latencies))}-{round(max(latencies))}",
                server_median_ms=round(statistics.median(server_ms)),
                held_s=round(hold_s, 1), held_frames_per_s=round(rate, 2), held_frames=painted,
                held_steps=len(held_ms),
                load_1min_before=round(load_before, 2), load_1min_after=round(os.getloadavg()[0], 2),
                key_to_frame_ms=[round(x) for x in latencies], last_readout=readout)


def serve(models: list[str], compile: str):
    """The demo on checkpoints/<model> for each model, every model loaded (and compiled if asked) first."""
    from demo.layout import build_demo, launch_options
    from demo.model_registry import ModelRegistry

    registry = ModelRegistry.from_paths([ROOT / "checkpoints" / name for name in models], device="cpu",
                                        compile=compile)
    registry.preload()
    demo = build_demo(registry)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                **launch_options())
    return demo, registry


def main(argv: list[str] | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    from demo.layout import CONCURRENCY_LIMIT

    args = parse_args(argv)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // CONCURRENCY_LIMIT))
    started = time.time()
    load_at_start = uptime()
    demo, registry = serve(models, args.compile)
    rows = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            for model in models:
                rows.append(measure_model(browser, demo.local_url, registry, model, args))
                print(rows[-1], flush=True)
            browser.close()
    finally:
        demo.close()
    columns = [("model", "model"), ("frames_per_press", "frames / press"), ("presses", "presses"),
               ("key_to_frame_median_ms", "key -> frame median ms"), ("key_to_frame_range_ms", "range ms"),
               ("server_median_ms", "server median ms"), ("held_s", "held s"), ("held_frames_per_s", "held frames/s"),
               ("held_steps", "held steps"), ("load_1min_before", "load before"), ("load_1min_after", "load after")]
    notes = [f"uptime at start: {load_at_start}", f"uptime at end: {uptime()}",
             f"compile: {args.compile}; torch threads: {torch.get_num_threads()}; "
             f"{round(time.time() - started)} s in all"]
    return report("Play in the browser: key press -> new frame painted, held-key frames/s",
                  "benchmarks.play_latency", torch.device("cpu"), rows, columns, notes, args.json)


if __name__ == "__main__":
    main()
