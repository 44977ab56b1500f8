"""Load test of the demo: concurrent gradio_client users, each running several generations, against a local
server that this script starts (`python app.py`) on a given checkpoint or on a tiny random one.

Prints latency percentiles, throughput and the server's peak memory as JSON and as a table, with the machine
and the command. Exits 1 unless every generation completed without an error.

    python benchmarks/load.py                        # tiny random checkpoint, 8 users x 5 generations
    python benchmarks/load.py --checkpoint checkpoints/pusher --users 8 --generations 5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tiny_random_checkpoint(directory: Path) -> Path:
    """A small random frames + actions pipeline (16 frames of 32x32 -> 4x8x8 = 256 tokens per video)."""
    import torch

    from videogpt_core.models.checkpoints import save_pipeline
    from videogpt_core.models.prior import VideoGPT
    from videogpt_core.models.vqvae import VQVAE

    torch.manual_seed(0)
    vqvae = VQVAE(embedding_dim=16, n_codes=64, n_hiddens=32, n_res_layers=1, downsample=(4, 4, 4),
                  sequence_length=16, resolution=32, n_attn_heads=2).eval()
    prior = VideoGPT.for_vqvae(vqvae, hidden_dim=96, n_heads=4, n_layers=2, dropout=0.0, attn_dropout=0.0,
                               n_cond_frames=1, frame_encoder_widths=(8, 8, 16, 24),
                               frame_encoder_blocks=(1, 1, 1, 1), action_dim=2, action_embed_dim=8).eval()
    with torch.no_grad():  # the constructor zeroes the output layer; random logits make sampling realistic
        prior.fc_out.weight.normal_(0.0, 0.05)
    return save_pipeline(directory / "tiny-random", vqvae, prior)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the server did not answer at {url} within {timeout:.0f} s")


class PeakMemory:
    """Samples the resident memory of a process and its children in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                processes = [self.process, *self.process.children(recursive=True)]
                total = sum(p.memory_info().rss for p in processes if p.is_running())
                self.peak_bytes = max(self.peak_bytes, total)
            except psutil.Error:
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


FRAMES_ARGUMENT = 7  # where /generate takes the number of frames


def request_arguments(checkpoint: Path, model: str | None, n_frames: int | None) -> tuple[str, list]:
    """The /generate arguments that the chosen model needs (an example frame, a class, still actions)."""
    from gradio_client import handle_file

    from demo.model_registry import ModelRegistry
    from demo.examples import example_frames

    registry = ModelRegistry.from_paths([checkpoint], device="cpu")
    if not registry.names:
        raise SystemExit(f"no pipeline folder found in {checkpoint}")
    info = registry.info(model or registry.names[0])
    frames = n_frames or info.sequence_length
    first_frame = handle_file(example_frames()[0][0]) if info.takes_start_image and info.needs_frames else None
    label = info.class_names[0] if info.class_names else None
    width = info.action_dim or 2
    actions = {"headers": [f"a{i}" for i in range(width)], "data": [[0.0] * width for _ in range(frames)]}
    # Seed 0 randomized, one sample, `frames` frames; the sampling sliders (after them) at their defaults.
    return info.name, [info.name, first_frame, label, actions, 0, True, 1, frames]


def run_user(url: str, arguments: list, generations: int) -> tuple[list[float], list[str]]:
    from gradio_client import Client

    latencies, errors = [], []
    client = Client(url, verbose=False)
    for _ in range(generations):
        started = time.perf_counter()
        try:
            outputs = client.predict(*arguments, api_name="/generate")
            if not (isinstance(outputs[2], str) and outputs[2].endswith(".mp4")):
                raise RuntimeError(f"no video in the result: {outputs[1]!r}")
            latencies.append(time.perf_counter() - started)
        except Exception as error:  # counted and reported: the benchmark must see every failure
            errors.append(f"{type(error).__name__}: {error}")
    return latencies, errors


def machine_info() -> dict:
    import gradio
    import torch

    cpu_model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_model,
        "cpu_count": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "torch": torch.__version__, "gradio": gradio.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),  # other work on the machine skews timings
    }


def serve_and_load(checkpoint: Path, arguments: list, args: argparse.Namespace,
                   scratch: Path) -> tuple[list, float, int, int]:
    """Start the demo server on `checkpoint`, run the users against it, stop it: (results per user, wall
    seconds, idle RSS, peak RSS)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = scratch / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoint", str(checkpoint),
                                   "--host", "127.0.0.1", "--port", str(port)],
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(url, server, args.startup_timeout)
        idle_rss = psutil.Process(server.pid).memory_info().rss
        with PeakMemory(server.pid) as memory, ThreadPoolExecutor(args.users) as pool:
            started = time.perf_counter()
            results = list(pool.map(lambda _: run_user(url, arguments, args.generations), range(args.users)))
            wall = time.perf_counter() - started
    except Exception:
        print(log_path.read_text()[-4000:], file=sys.stderr)
        raise
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return results, wall, idle_rss, memory.peak_bytes


def print_table(report: dict, command: str, model: str, arguments: list, args: argparse.Namespace,
                expected: int) -> None:
    """The report as a readable table (after the JSON)."""
    rows = [
        ("command", command),
        ("machine", f"{report['machine']['cpu']} x{report['machine']['cpu_count']}, "
                    f"{report['machine']['memory_gb']} GB, torch {report['machine']['torch']}, "
                    f"gradio {report['machine']['gradio']}, cuda {report['machine']['cuda']}, "
                    f"load average {report['machine']['load_average_1m_at_start']} at start"),
        ("model", f"{model} ({report['checkpoint']}), {arguments[FRAMES_ARGUMENT]} frames per video"),
        ("load", f"{args.users} users x {args.generations} generations"),
        ("completed / errors", f"{report['completed']} / {expected} completed, {report['errors']} errors"),
        ("latency p50 / p95", f"{report['latency_s']['p50']} s / {report['latency_s']['p95']} s"),
        ("throughput", f"{report['throughput_videos_per_s']} videos/s over {report['wall_s']} s"),
        ("server RSS idle / peak", f"{report['server_rss_mb']['idle']} MB / {report['server_rss_mb']['peak']} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="pipeline folder or folder of them (default: a tiny "
                                                        "random checkpoint made in a temporary folder)")
    parser.add_argument("--model", help="model name inside --checkpoint (default: the first)")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--generations", type=int, default=5, help="generations per user")
    parser.add_argument("--frames", type=int, default=None, help="frames per video (default: the model's window)")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--json", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)

    command = " ".join(shlex.quote(part) for part in [sys.executable, *sys.argv])
    machine = machine_info()  # before the load, so the load average is the machine's own
    with tempfile.TemporaryDirectory(prefix="videogpt-load-") as scratch:
        checkpoint = args.checkpoint or tiny_random_checkpoint(Path(scratch))
        model, arguments = request_arguments(checkpoint, args.model, args.frames)
        results, wall, idle_rss, peak_rss = serve_and_load(checkpoint, arguments, args, Path(scratch))

    latencies = np.array([t for user_latencies, _ in results for t in user_latencies])
    errors = [e for _, user_errors in results for e in user_errors]
    expected = args.users * args.generations
    report = {
        "command": command,
        "machine": machine,
        "checkpoint": "tiny random (benchmark-made)" if args.checkpoint is None else str(args.checkpoint),
        "model": model,
        "frames_per_video": arguments[FRAMES_ARGUMENT],
        "users": args.users,
        "generations_per_user": args.generations,
        "completed": int(len(latencies)),
        "expected": expected,
        "errors": len(errors),
        "error_messages": sorted(set(errors))[:10],
        "latency_s": {
            "p50": round(float(np.percentile(latencies, 50)), 3) if len(latencies) else None,
            "p95": round(float(np.percentile(latencies, 95)), 3) if len(latencies) else None,
            "mean": round(float(latencies.mean()), 3) if len(latencies) else None,
            "max": round(float(latencies.max()), 3) if len(latencies) else None,
        },
        "throughput_videos_per_s": round(len(latencies) / wall, 3),
        "wall_s": round(wall, 2),
        "server_rss_mb": {"idle": round(idle_rss / 2**20, 1), "peak": round(peak_rss / 2**20, 1)},
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report, command, model, arguments, args, expected)
    return 0 if report["completed"] == expected and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
