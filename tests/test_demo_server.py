"""The demo served for real (in this process, on a free port) and driven through gradio_client."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import numpy as np
import pytest
from demo_helpers import REPO_ROOT, WINDOW, free_port, make_checkpoints, moving_square_video, still_image
from PIL import Image

from videogpt_core.io.video_io import read_video, write_mp4
from videogpt_core.io.video_probe import probe_stream

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

pytestmark = pytest.mark.slow

STILL_ACTIONS = {"headers": ["dx", "dy"], "data": [[0.0, 0.0]] * WINDOW}


@pytest.fixture
def client(demo_server):
    return Client(demo_server[2], verbose=False)


def generate(client, model, first_frame=None, label=None, actions=STILL_ACTIONS, seed=5, n_samples=1,
             n_frames=WINDOW, **settings):
    sampling = dict(temperature=1.0, top_k=0, top_p=1.0, guidance=1.0) | settings
    return client.predict(model, first_frame, label, actions, seed, False, n_samples, n_frames,
                          sampling["temperature"], sampling["top_k"], sampling["top_p"], sampling["guidance"],
                          api_name="/generate")


def check_result(outputs, n_samples: int, n_frames: int, seed: int):
    preview, progress, video, gif, seed_used, _ = outputs
    assert progress.startswith("Done:") and f"seed {seed}" in progress
    assert seed_used == seed
    stream = probe_stream(video)
    assert (stream.codec, stream.pix_fmt) == ("h264", "yuv420p")
    frames = read_video(video)
    assert len(frames) == n_frames
    assert gif.endswith(".gif")
    assert preview.endswith(".png")
    return frames


def test_api_lists_the_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert {"/generate", "/continue", "/reconstruct", "/model_card"} <= set(api["named_endpoints"])


def test_generate_frames_and_actions_then_continue(client, tmp_path):
    image = still_image(tmp_path / "start.png", (48, 32), mode="RGBA")
    check_result(generate(client, "pusher-tiny", handle_file(str(image)), n_samples=2), 2, WINDOW, 5)
    more = {"headers": ["dx", "dy"], "data": [[2.0, 0.0]] * 4}
    outputs = client.predict(2, more, 6, False, 1, 4, 1.0, 0, 1.0, 1.0, api_name="/continue")
    check_result(outputs, 1, WINDOW + 4, 6)


def test_generate_class_conditional(client):
    frames = check_result(generate(client, "digits-tiny", label="two", n_samples=3, seed=9), 3, WINDOW, 9)
    assert frames.shape[2] > frames.shape[1]  # three samples side by side


def test_generate_unconditional_longer_than_a_window(client):
    check_result(generate(client, "uncond-tiny", n_frames=WINDOW + 4, seed=1), 1, WINDOW + 4, 1)


def test_reconstruct(client, tmp_path):
    clip = write_mp4(tmp_path / "clip.mp4", moving_square_video(8, 32), 10)
    video, plot, scores, summary, codes, report = client.predict(
        handle_file(str(clip)), ["uncond-tiny", "digits-tiny"], 64, 8, api_name="/reconstruct")
    assert probe_stream(video).codec == "h264"
    assert [row[0] for row in plot["data"]] == list(range(1, 9)) * 2
    assert [row[0] for row in scores["data"]] == ["uncond-tiny", "digits-tiny"] and "bits" in summary
    assert len(codes) == 2 and report["frames"] == 8


def test_model_card(client):
    card = client.predict("digits-tiny", api_name="/model_card")
    assert card.startswith("# digits-tiny") and "a class (3)" in card


def test_concurrent_requests_all_complete(demo_server):
    url = demo_server[2]
    clients = [Client(url, verbose=False) for _ in range(4)]
    jobs = [c.submit("uncond-tiny", None, None, STILL_ACTIONS, i, False, 1, WINDOW, 1.0, 0, 1.0, 1.0,
                     api_name="/generate") for i, c in enumerate(clients)]
    results = [job.result(timeout=120) for job in jobs]
    assert [r[4] for r in results] == [0, 1, 2, 3]


class SlowPipeline:
    """A pipeline whose latent slices take `delay` seconds each, counting the slices it produced."""

    def __init__(self, pipeline, delay: float):
        self.pipeline, self.delay, self.slices = pipeline, delay, 0

    def stream(self, *args, **kwargs):
        for update in self.pipeline.stream(*args, **kwargs):
            time.sleep(self.delay)
            self.slices += 1
            yield update

    def __getattr__(self, name):
        return getattr(self.pipeline, name)


@contextmanager
def slowed(registry, name: str, delay: float):
    """Serve model `name` through a SlowPipeline for the duration of the block."""
    real = registry.pipeline(name)
    slow = SlowPipeline(real, delay=delay)
    registry._pipelines[name] = slow
    try:
        yield slow
    finally:
        registry._pipelines[name] = real


def test_cancel_stops_within_one_latent_slice(demo_server, client):
    _, registry, _ = demo_server
    with slowed(registry, "uncond-tiny", delay=0.4) as slow:
        n_frames = 4 * WINDOW  # 12 slices, about 5 s
        job = client.submit("uncond-tiny", None, None, STILL_ACTIONS, 3, False, 1, n_frames, 1.0, 0, 1.0, 1.0,
                            api_name="/generate")
        deadline = time.time() + 30
        while slow.slices < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert slow.slices >= 2
        job.cancel()
        at_cancel = slow.slices
        time.sleep(6 * slow.delay)
        assert slow.slices <= at_cancel + 1, "generation went on after the cancel"
        assert slow.slices < 12
    # The server is still serving.
    outputs = generate(Client(demo_server[2], verbose=False), "uncond-tiny", seed=2)
    assert outputs[1].startswith("Done:")


def test_preview_streams_before_the_result(demo_server, client):
    job = client.submit("uncond-tiny", None, None, STILL_ACTIONS, 8, False, 1, WINDOW, 1.0, 0, 1.0, 1.0,
                        api_name="/generate")
    job.result(timeout=60)
    updates = job.outputs()
    assert len(updates) >= 3  # a preview per latent slice, then the result
    # Until the end the video is cleared (None) or left alone (a no-op update), never a file.
    assert all(not isinstance(u[2], str) for u in updates[:-1]) and isinstance(updates[-1][2], str)
    progress = [u[1] for u in updates]
    assert any("tokens/s" in p and "/ 48 tokens" in p for p in progress[:-1])
    first_preview = np.asarray(Image.open(updates[0][0]))
    assert first_preview.ndim == 3


def serve_app(arguments: list[str], timeout: float = 120.0):
    """Start `python app.py ARGS` and wait until it answers; returns (process, url)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "app.py"), *arguments, "--port", str(port)],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError(f"app.py did not serve within {timeout} s")


def stop(process) -> str:
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_app_command_line_serves_the_given_checkpoints(tmp_path):
    folders = make_checkpoints(tmp_path / "models")
    process, url = serve_app(["--checkpoint", str(folders["digits-tiny"]), "--checkpoint",
                              str(folders["uncond-tiny"]), "--host", "127.0.0.1", "--compile", "background"])
    try:
        assert url.startswith("http://127.0.0.1:")
        client = Client(url, verbose=False)
        assert client.predict("uncond-tiny", api_name="/model_card").startswith("# uncond-tiny")
        outputs = client.predict("digits-tiny", None, "one", STILL_ACTIONS, 4, False, 1, WINDOW, 1.0, 0, 1.0, 1.0,
                                 api_name="/generate")
        assert outputs[1].startswith("Done:")
    finally:
        output = stop(process)
    assert "serving 2 model(s): digits-tiny, uncond-tiny" in output
    assert "compiling their decode steps in the background" in output  # serving did not wait for it


def test_app_without_checkpoints_says_so(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    process, url = serve_app(["--checkpoint", str(empty)])
    try:
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            config = json.loads(response.read())
        texts = [c.get("props", {}).get("value") for c in config["components"]]
        assert any(isinstance(t, str) and "No model found" in t for t in texts)
    finally:
        stop(process)
