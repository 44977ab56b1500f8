"""The Play tab in a real browser (headless Chromium via Playwright): start from an example, steer with keys
and on-screen buttons, undo / reset, and bad use (keys before a start, key mashing, two tabs, leaving
mid-step). On the tiny test models; `test_play_latency_on_the_shipped_pusher` measures key-to-frame latency
and frame rate on checkpoints/pusher."""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import pytest

from test_demo_browser import TIMEOUT_MS, browser  # noqa: F401 (browser: the fixture, used by name)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO_ROOT = Path(__file__).resolve().parent.parent
PUSHER = REPO_ROOT / "checkpoints" / "pusher"
LATENCY_REPORT = Path(os.environ.get("VIDEOGPT_PLAY_REPORT", "/tmp/videogpt-play-latency.json"))


def open_play(browser, url):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.set_default_timeout(TIMEOUT_MS)  # a busy machine serves the page slowly
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Play").click()
    page.wait_for_selector("#play-screen canvas.play-screen", timeout=TIMEOUT_MS)
    page.wait_for_selector("#play-examples button.thumbnail-item img", timeout=TIMEOUT_MS)
    return page, errors


def stats(page) -> dict:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.videogptPlay))")


def status(page) -> str:
    return page.locator("#play-screen .play-status").inner_text()


def start_from_example(page) -> None:
    page.locator("#play-examples button.thumbnail-item").first.click()
    page.wait_for_function("() => window.videogptPlay && window.videogptPlay.episode", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#play-screen .play-status').innerText.includes('Hold')",
                           timeout=TIMEOUT_MS)


def canvas(page) -> str:
    return page.evaluate("() => document.querySelector('#play-screen canvas.play-screen').toDataURL()")


def wait_idle(page, steps: int) -> None:
    """Until `steps` steps have come back and their frames are drawn."""
    page.wait_for_function(f"() => window.videogptPlay.steps >= {steps}", timeout=TIMEOUT_MS)
    page.wait_for_timeout(600)  # the step's frames are paced at the world's rate


def tap(page, key: str, steps_before: int) -> None:
    """Hold `key` until a step has started, then let go; wait for its frames."""
    page.keyboard.down(key)
    page.keyboard.up(key)
    wait_idle(page, steps_before + 1)


def player_of(demo, page):
    store = demo.play_store
    deadline = time.time() + 10
    while time.time() < deadline:
        players = list(store._players.values())
        episode = stats(page)["episode"]
        for player in players:
            if player.episode == episode:
                return player
        time.sleep(0.1)
    raise AssertionError("the page's world is not in the store")


def test_keys_steer_the_world_from_an_example(browser, demo_server):  # noqa: F811
    demo, _, url = demo_server
    page, errors = open_play(browser, url)
    start_from_example(page)
    assert "left" in page.locator("#play-controls").inner_text().lower()  # the world's key table is shown
    before = canvas(page)
    tap(page, "ArrowRight", 0)
    after_right = canvas(page)
    assert after_right != before, "no new frame appeared after a key press"
    player = player_of(demo, page)
    assert player.session.n_steps == 1
    # The same key again after an undo gives the same frames; another key gives others.
    page.locator("#play-screen [data-op=undo]").click()
    page.wait_for_function("() => document.querySelector('#play-screen .play-status').innerText.includes('step 0')",
                           timeout=TIMEOUT_MS)
    assert canvas(page) == before
    tap(page, "ArrowRight", 1)
    assert canvas(page) == after_right
    page.locator("#play-screen [data-op=undo]").click()
    page.wait_for_function("() => document.querySelector('#play-screen .play-status').innerText.includes('step 0')",
                           timeout=TIMEOUT_MS)
    tap(page, "a", 2)  # WASD too
    assert canvas(page) not in (before, after_right), "a different key gave the same frame"
    # Holding a key keeps playing, past the model's window (sliding).
    window = player.session.pipeline.config.sequence_length
    page.keyboard.down("ArrowDown")
    page.wait_for_function(f"() => window.videogptPlay.steps >= 3 + {window}", timeout=TIMEOUT_MS)
    page.keyboard.up("ArrowDown")
    page.wait_for_timeout(1500)
    length = len(player.session.frames)
    assert length > window
    steps = stats(page)["steps"]
    page.wait_for_timeout(1000)
    assert stats(page)["steps"] == steps, "the world kept stepping with no key held"
    # On-screen buttons (touch screens) steer as keys do.
    page.locator("#play-screen [data-control=up]").hover()
    page.mouse.down()
    page.wait_for_function(f"() => window.videogptPlay.steps >= {steps + 1}", timeout=TIMEOUT_MS)
    page.mouse.up()
    # The readout shows the speed; the mp4 holds the whole episode.
    page.wait_for_function("() => /latest step \\d+ ms (key|step) → frame.* · [\\d.]+ frames\\/s/.test("
                           "document.querySelector('#play-screen .play-readout').innerText)", timeout=TIMEOUT_MS)
    page.wait_for_timeout(1000)
    page.locator("#play-mp4-button").click()
    page.wait_for_selector("#play-mp4 a", timeout=TIMEOUT_MS)
    assert ".mp4" in page.locator("#play-mp4").inner_text()
    page.locator("#play-screen [data-op=reset]").click()
    page.wait_for_function("() => document.querySelector('#play-screen .play-status').innerText.includes('start')",
                           timeout=TIMEOUT_MS)
    assert player.session.n_steps == 0 and canvas(page) == before
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_keys_before_a_start_frame_and_key_mashing(browser, demo_server):  # noqa: F811
    demo, _, url = demo_server
    page, errors = open_play(browser, url)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press(" ")
    assert "Pick a start first" in status(page)
    assert stats(page)["steps"] == 0
    start_from_example(page)
    player = player_of(demo, page)
    start_length = len(player.session.frames)
    for _ in range(10):  # mashing: many keys down and up, faster than a step
        for key in ("ArrowLeft", "ArrowUp", "d", "s", " ", "x"):
            page.keyboard.down(key)
        for key in ("ArrowLeft", "ArrowUp", "d", "s", " ", "x"):
            page.keyboard.up(key)
    page.wait_for_function("() => window.videogptPlay.steps >= 1", timeout=TIMEOUT_MS)
    page.wait_for_timeout(3000)
    session = player.session
    frames, actions = session.frames, session.actions
    assert len(frames) == len(actions) == start_length + sum(session._steps)
    assert stats(page)["steps"] == session.n_steps  # every step the page asked for, once
    assert stats(page)["episode"] == player.episode  # Space did not click the example again (a restart)
    assert not stats(page)["errors"]
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_two_tabs_play_their_own_worlds_and_leaving_mid_step_frees_the_world(browser, demo_server):  # noqa: F811
    demo, _, url = demo_server
    first, first_errors = open_play(browser, url)
    second, second_errors = open_play(browser, url)
    start_from_example(first)
    start_from_example(second)
    one, two = player_of(demo, first), player_of(demo, second)
    assert one is not two
    first.keyboard.down("ArrowRight")
    second.keyboard.down("ArrowLeft")
    first.wait_for_function("() => window.videogptPlay.steps >= 3", timeout=TIMEOUT_MS)
    second.wait_for_function("() => window.videogptPlay.steps >= 3", timeout=TIMEOUT_MS)
    first.keyboard.up("ArrowRight")
    # The first tab's world holds only right moves, the second's only left moves.
    time.sleep(1.5)
    assert (one.session.actions[1:, 0] > 0).all()
    assert (two.session.actions[1:, 0] < 0).all()
    # The second tab leaves while its key is held (a step is running or about to): its world is freed.
    players_before = len(demo.play_store)
    second.close()
    deadline = time.time() + 30
    while len(demo.play_store) >= players_before and time.time() < deadline:
        time.sleep(0.2)
    assert len(demo.play_store) == players_before - 1, "the world of a closed tab was not freed"
    # The first tab still plays.
    steps = stats(first)["steps"]
    tap(first, "ArrowUp", steps)
    first.close()
    assert not first_errors and not second_errors, f"JavaScript errors: {first_errors} {second_errors}"


@pytest.fixture(scope="module")
def pusher_server():
    """The demo on the shipped pusher model, compiled and warmed up as `python app.py --compile on-load` does."""
    if not (PUSHER / "prior").is_dir():
        pytest.skip(f"no shipped pusher checkpoint at {PUSHER}")
    from demo_helpers import free_port

    from demo.model_registry import ModelRegistry
    from demo.layout import build_demo, launch_options

    registry = ModelRegistry.from_paths([PUSHER], device="cpu", compile="on-load")
    registry.preload()
    demo = build_demo(registry)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                **launch_options())
    try:
        yield demo, registry, demo.local_url
    finally:
        demo.close()


def test_play_latency_on_the_shipped_pusher(browser, pusher_server):  # noqa: F811
    """Key press -> first new frame drawn, for presses made while the world is idle, and the frame rate while
    a key is held; written to LATENCY_REPORT (the figures in BENCHMARKS.md come from here)."""
    demo, _, url = pusher_server
    page, errors = open_play(browser, url)
    start_from_example(page)
    load_before = os.getloadavg()
    presses = 8
    for index in range(presses):
        key = ("ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp")[index % 4]
        page.keyboard.down(key)
        page.keyboard.up(key)
        page.wait_for_function(f"() => window.videogptPlay.latencies.length >= {index + 1} && "
                               "!window.videogptPlay.busy", timeout=TIMEOUT_MS)
        page.wait_for_timeout(700)  # the step's frames play out: the next press finds the world idle
    figures = stats(page)
    latencies = figures["latencies"][:presses]
    server_ms = figures["serverMs"][:presses]
    # Continuous play: hold a key; frames per second over the frames drawn while it is held.
    held_from = page.evaluate("() => performance.now()")
    page.keyboard.down("ArrowRight")
    page.wait_for_timeout(15_000)
    page.keyboard.up("ArrowRight")
    page.wait_for_function("() => !window.videogptPlay.busy", timeout=TIMEOUT_MS)
    figures = stats(page)
    drawn = [t for t in figures["frameTimes"] if t >= held_from]
    fps = (len(drawn) - 1) / ((drawn[-1] - drawn[0]) / 1000) if len(drawn) > 1 else 0.0
    player = player_of(demo, page)
    report = dict(
        model="checkpoints/pusher (compiled, 1 torch thread)",
        key_to_frame_ms=dict(median=statistics.median(latencies), all=[round(x) for x in latencies]),
        server_ms_per_step=dict(median=statistics.median(server_ms), all=[round(x) for x in server_ms]),
        held_key_frames_per_second=round(fps, 2), held_key_steps=len(figures["serverMs"]) - presses,
        held_server_ms_median=statistics.median(figures["serverMs"][presses:]) if len(figures["serverMs"]) > presses
        else None,
        episode_frames=len(player.session.frames), load_average_before=load_before,
        load_average_after=os.getloadavg(), cpus=os.cpu_count())
    LATENCY_REPORT.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert len(latencies) == presses and all(x > 0 for x in latencies)
    assert len(drawn) >= 2, "no frames while a key was held"
