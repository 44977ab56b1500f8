"""A corpus of bad inputs sent to the running demo through gradio_client: each is answered with a clear
error, and the server keeps serving (a good request afterwards succeeds)."""
from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest
from demo_helpers import WINDOW, still_image
from PIL import Image

from videogpt_core.io.video_io import write_gif, write_mp4

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

pytestmark = pytest.mark.slow

STILL = {"headers": ["dx", "dy"], "data": [[0.0, 0.0]] * WINDOW}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-files")
    huge = root / "huge.png"
    Image.new("L", (5000, 4200)).save(huge)  # 21 MP
    text = root / "notes.txt"
    text.write_text("hello, not an image or a video\n")
    fake_png = root / "fake.png"
    fake_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    noise_mp4 = root / "noise.mp4"
    noise_mp4.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    text_mp4 = root / "text.mp4"
    text_mp4.write_text("definitely not a video\n" * 50)
    empty = root / "empty.webm"
    empty.write_bytes(b"")
    truncated = root / "truncated.mp4"
    good = write_mp4(root / "good.mp4", np.zeros((8, 32, 32, 3), np.uint8), 10).read_bytes()
    truncated.write_bytes(good[: len(good) // 3])
    one_frame = write_gif(root / "one.gif", np.zeros((1, 16, 16, 3), np.uint8), 10)
    too_big_video = write_mp4(root / "big.mp4", np.zeros((2, 1200, 2000, 3), np.uint8), 10)
    start = still_image(root / "start.png")
    huge_canvas_gif = root / "canvas.gif"
    Image.new("P", (20000, 20000)).save(huge_canvas_gif)  # 400 MP canvas, a few KB on disk
    return dict(huge=huge, text=text, fake_png=fake_png, noise_mp4=noise_mp4, text_mp4=text_mp4, empty=empty,
                truncated=truncated, one_frame=one_frame, too_big_video=too_big_video, start=start,
                image_as_video=start, huge_canvas_gif=huge_canvas_gif)


def generate_args(model="pusher-tiny", first_frame=None, label=None, actions=STILL, temperature=1.0, top_k=0,
                  top_p=1.0, guidance=1.0, repetition_penalty=1.0, seed=1, n_samples=1, n_frames=WINDOW):
    return [model, first_frame, label, actions, seed, False, n_samples, n_frames, temperature, top_k, top_p,
            guidance, repetition_penalty]


def bad_requests(files):
    """(name, api_name, args, expected message pattern)."""
    start = handle_file(str(files["start"]))
    return [
        ("text file as first frame", "/generate", generate_args(first_frame=handle_file(str(files["text"]))),
         r"image|identify"),
        ("broken png as first frame", "/generate", generate_args(first_frame=handle_file(str(files["fake_png"]))),
         r"image|identify|truncated"),
        ("21 MP first frame", "/generate", generate_args(first_frame=handle_file(str(files["huge"]))),
         r"over the limit of 20.0 MP"),
        ("no first frame", "/generate", generate_args(), r"first frame"),
        ("text in the action table", "/generate",
         generate_args(first_frame=start, actions={"headers": ["dx", "dy"], "data": [["left", 0]] * WINDOW}),
         r"row 1, column dx"),
        ("no action table", "/generate", generate_args(first_frame=start, actions=None), r"no actions given"),
        ("too few action rows", "/generate",
         generate_args(first_frame=start, actions={"headers": ["dx", "dy"], "data": [[1, 0]] * 2}),
         r"2 rows but 6 frames"),
        ("unknown class", "/generate", generate_args(model="digits-tiny", label="seven"),
         r"not one of this model's classes"),
        ("unknown model", "/generate", generate_args(model="nope"), r"nope"),
        ("temperature 0", "/generate", generate_args(model="uncond-tiny", temperature=0.0), r"minimum|temperature"),
        ("fractional top-k", "/generate", generate_args(model="uncond-tiny", top_k=2.5), r"top_k"),
        ("top-p 0", "/generate", generate_args(model="uncond-tiny", top_p=0.0), r"minimum|top_p"),
        ("guidance on an unconditional model", "/generate", generate_args(model="uncond-tiny", guidance=3.0),
         r"cfg_scale"),
        ("7 samples", "/generate", generate_args(model="uncond-tiny", n_samples=7), r"maximum|samples"),
        ("1000 frames", "/generate", generate_args(model="uncond-tiny", n_frames=1000), r"maximum|frames"),
        ("negative seed", "/generate", generate_args(model="uncond-tiny", seed=-5), r"minimum|seed"),
        ("continue before generating", "/continue", [1, STILL, 1, False, 1, 4, 1.0, 0, 1.0, 1.0, 1.0],
         r"generate a video first"),
        ("malformed action text", "/parse_actions", ["pusher-tiny", "3,0; 3,x; 0,2"],
         r"entry 2 \('3,x'\): 'x' is not a number"),
        ("action text with three values", "/parse_actions", ["pusher-tiny", "1,2,3"], r"has 3 value"),
        ("no video", "/reconstruct", [None, ["uncond-tiny"], 64, WINDOW], r"upload a video"),
        ("random bytes as mp4", "/reconstruct", [handle_file(str(files["noise_mp4"])), ["uncond-tiny"], 64, WINDOW],
         r"not a readable video|decodable frames"),
        ("text as mp4", "/reconstruct", [handle_file(str(files["text_mp4"])), ["uncond-tiny"], 64, WINDOW],
         r"not a readable video|decodable frames"),
        ("empty webm", "/reconstruct", [handle_file(str(files["empty"])), ["uncond-tiny"], 64, WINDOW], r"empty file"),
        ("truncated mp4", "/reconstruct", [handle_file(str(files["truncated"])), ["uncond-tiny"], 64, WINDOW],
         r"not a readable video|decodable frames|frame"),
        ("one-frame gif", "/reconstruct", [handle_file(str(files["one_frame"])), ["uncond-tiny"], 64, WINDOW],
         r"has 1 frame"),
        ("image as video", "/reconstruct", [handle_file(str(files["image_as_video"])), ["uncond-tiny"], 64, WINDOW],
         r"has 1 frame|not a readable video|file type|Invalid"),
        ("text file as video", "/reconstruct", [handle_file(str(files["text"])), ["uncond-tiny"], 64, WINDOW],
         r"not a readable video|decodable frames|file type|Invalid"),
        ("over 1080p", "/reconstruct", [handle_file(str(files["too_big_video"])), ["uncond-tiny"], 64, WINDOW],
         r"up to 1080p"),
        ("one frame to reconstruct", "/reconstruct", [handle_file(str(files["truncated"])), ["uncond-tiny"], 64, 1],
         r"minimum|frames"),
        ("huge-canvas gif", "/reconstruct", [handle_file(str(files["huge_canvas_gif"])), ["uncond-tiny"], 64, WINDOW],
         r"canvas.gif is a 20000x20000 GIF; videos up to 1080p"),
        ("ragged action table", "/generate",
         generate_args(first_frame=start, actions={"headers": ["dx", "dy"], "data": [[0, 0], [1]] + [[0, 0]] * 4}),
         r"action row 2 has 1 values; this model takes 2 per frame \(dx, dy\)"),
        ("text where the action table goes", "/generate", generate_args(first_frame=start, actions="3,0; 1,1"),
         r"the action table must be \{'headers'.*got str '3,0; 1,1'"),
        ("a number where the action table goes", "/generate", generate_args(first_frame=start, actions=5),
         r"the action table must be .*got int"),
        ("dx far outside the trained range", "/generate",
         generate_args(first_frame=start, actions={"headers": ["dx", "dy"], "data": [[0, 0]] + [[1e6, 0]] * 5}),
         r"action row 2, dx = 1e\+06 is outside the range this model was trained on \(dx in \[-3, 3\], "
         r"dy in \[-3, 3\]\)"),
        ("dy of 10", "/generate",
         generate_args(first_frame=start, actions={"headers": ["dx", "dy"], "data": [[0, 10]] * WINDOW}),
         r"action row 1, dy = 10 is outside the range"),
        ("seed 2**70", "/generate", generate_args(model="uncond-tiny", seed=2**70), r"seed must be between 0 and"),
        ("fractional seed", "/generate", generate_args(model="uncond-tiny", seed=1.5),
         r"seed must be a whole number, got 1.5"),
        ("fractional class index", "/generate", generate_args(model="digits-tiny", label=7.9),
         r"label '7.9' is not one of this model's classes"),
        ("a list as the model card's name", "/model_card", [["pusher-tiny"]], r"unknown model \['pusher-tiny'\]"),
        ("a number as the model card's name", "/model_card", [3], r"unknown model 3"),
    ]


def raw_bad_requests():
    """(name, api_name, JSON body, expected message): values gradio_client cannot send (NaN), posted as raw JSON."""
    nan_top_k = generate_args(model="uncond-tiny")
    nan_top_k[9] = float("nan")
    inf_seed = generate_args(model="uncond-tiny")
    inf_seed[4] = float("inf")
    return [
        ("top-k NaN", "generate", json.dumps({"data": nan_top_k}), r"top_k must be a whole number"),
        ("seed infinity", "generate", json.dumps({"data": inf_seed}), r"seed must be a whole number, got inf"),
    ]


def raw_call_error(url: str, api_name: str, body: str) -> str:
    """POST a raw JSON body to the demo's HTTP API and return the error event's message."""
    request = urllib.request.Request(f"{url}gradio_api/call/{api_name}", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=60) as response:
        events = response.read().decode()
    assert "event: error" in events, events
    return events.split("event: error", 1)[1]


def test_every_bad_input_gets_a_clear_error_and_the_server_keeps_serving(demo_server, files):
    url = demo_server[2]
    answered = []
    for name, api_name, args, pattern in bad_requests(files):
        client = Client(url, verbose=False)  # a fresh session: no state from the request before
        with pytest.raises(AppError) as caught:
            client.predict(*args, api_name=api_name)
        message = str(caught.value)
        assert re.search(pattern, message), f"{name}: unexpected message {message!r}"
        assert "upstream Gradio app has raised an exception" not in message, f"{name}: generic error"
        answered.append(name)
    for name, api_name, body, pattern in raw_bad_requests():
        message = raw_call_error(url, api_name, body)
        assert re.search(pattern, message), f"{name}: unexpected message {message!r}"
        answered.append(name)
    assert len(answered) == len(bad_requests(files)) + len(raw_bad_requests())
    # Still healthy: the page loads and a good generation of each kind succeeds.
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
    client = Client(url, verbose=False)
    outputs = client.predict(*generate_args(first_frame=handle_file(str(files["start"]))), api_name="/generate")
    assert outputs[1].startswith("Done:") and outputs[2].endswith(".mp4")
    outputs = client.predict(*generate_args(model="digits-tiny", label="one"), api_name="/generate")
    assert outputs[1].startswith("Done:")
    table = client.predict("pusher-tiny", "3,0 x2; 0,1", api_name="/parse_actions")
    assert table["data"] == [[3, 0], [3, 0], [0, 1]]
