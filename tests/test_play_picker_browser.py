"""The Play tab follows the page's Model picker, in a real browser (headless Chromium via Playwright): the
world and its keys change with the picker, a per-frame model plays one frame per key press, a model that cannot
be played says so, the readout shows the latest step and '–' frames/s when idle, and a page closed in the
middle of a step leaves the server serving the other page. Tiny models: a pusher (2 frames per latent slice),
a per-frame vizdoom and a class-conditional digits model."""
from __future__ import annotations

import re
import time

import pytest
from test_demo_browser import TIMEOUT_MS, browser  # noqa: F401 (browser: the fixture, used by name)
from test_play_browser import canvas, open_play, player_of, start_from_example, stats, status, wait_idle
from test_play_worlds import per_frame_vizdoom

from demo.play_tab import CONCURRENT_STEPS

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def worlds_server(tmp_path_factory):
    """The demo on a tiny pusher (the page opens with it), a per-frame tiny vizdoom and a tiny digits model."""
    from demo_helpers import make_checkpoints, running_demo

    root = tmp_path_factory.mktemp("checkpoints")
    folders = make_checkpoints(root)
    with running_demo([folders["pusher-tiny"], per_frame_vizdoom(root), folders["digits-tiny"]]) as running:
        yield running


def choose_model(page, name: str) -> None:
    page.locator("#model input").click()
    page.get_by_role("option", name=name).click()


def keys_text(page) -> str:
    return page.locator("#play-screen .play-keys").inner_text()


def readout(page) -> str:
    return page.locator("#play-screen .play-readout").inner_text()


def test_the_model_picker_chooses_the_world_and_its_keys(browser, worlds_server):  # noqa: F811
    demo, _, url = worlds_server
    page, errors = open_play(browser, url)
    assert page.locator("#play-model").count() == 0, "the Play tab has a model picker of its own"
    assert "pusher world" in keys_text(page) and "move the gripper left" in keys_text(page)
    assert "one latent slice of 2 frames" in keys_text(page)
    start_from_example(page)
    for count in (1, 2):  # the first press completes the start frame's slice; then a slice of 2 frames a press
        page.keyboard.down("ArrowRight")
        page.keyboard.up("ArrowRight")
        wait_idle(page, count)
    assert len(stats(page)["frameTimes"]) == 1 + 2

    # The picker at the top switches the world: its keys, its examples, a new start.
    choose_model(page, "vizdoom-tiny")
    page.wait_for_function("() => document.querySelector('#play-screen .play-keys').innerText.includes('vizdoom')",
                           timeout=TIMEOUT_MS)
    assert stats(page)["episode"] is None and "Pick a start" in status(page)
    assert "turn left" in keys_text(page) and "one new frame" in keys_text(page)
    assert "turn left" in page.locator("#play-controls").inner_text()
    page.wait_for_function("() => document.querySelector('#play-examples').innerText.includes('vizdoom')",
                           timeout=TIMEOUT_MS)
    assert "pusher" not in page.locator("#play-examples").inner_text()
    start_from_example(page)
    player = player_of(demo, page)
    assert player.model == "vizdoom-tiny" and player.controls.world == "vizdoom"
    before, painted, steps = canvas(page), len(stats(page)["frameTimes"]), stats(page)["steps"]
    for count in (1, 2, 3):  # one key, one new frame
        page.keyboard.down("ArrowLeft")
        page.keyboard.up("ArrowLeft")
        wait_idle(page, steps + count)
        assert len(stats(page)["frameTimes"]) == painted + count
    assert len(player.session.frames) == 1 + 3 and canvas(page) != before
    assert (player.session.actions[1:, 0] == 1).all()  # TURN_LEFT held in every new frame
    # The readout: the latest step's key -> frame time, and no frame rate once idle.
    assert re.search(r"latest step \d+ ms key → frame \(server \d+ ms\)", readout(page)), readout(page)
    page.wait_for_function("() => document.querySelector('#play-screen .play-readout').innerText"
                           ".endsWith('– frames/s')", timeout=TIMEOUT_MS)

    # A model that cannot be played says so; its keys do nothing.
    choose_model(page, "digits-tiny")
    page.wait_for_function("() => document.querySelector('#play-controls').innerText.includes('not "
                           "action-conditional')", timeout=TIMEOUT_MS)
    assert "cannot be played" in status(page) and keys_text(page) == ""
    assert not page.locator("#play-examples").is_visible()
    page.keyboard.press("ArrowLeft")
    page.wait_for_timeout(500)
    assert stats(page)["episode"] is None and stats(page)["steps"] == steps + 3
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_test_episodes_start_where_the_simulator_is(browser, worlds_server):  # noqa: F811
    _, _, url = worlds_server
    page, errors = open_play(browser, url)
    page.locator("#play-test-start").click()  # the pusher world is procedural: no simulator needed
    page.wait_for_function("() => document.querySelector('#play-screen .play-status').innerText"
                           ".includes('test episode 0')", timeout=TIMEOUT_MS)
    assert stats(page)["episode"]
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_leaving_mid_step_keeps_serving_the_other_page(browser, worlds_server):  # noqa: F811
    demo, _, url = worlds_server
    store = demo.play_store
    first, first_errors = open_play(browser, url)
    second, second_errors = open_play(browser, url)
    start_from_example(first)
    start_from_example(second)
    players = len(store)
    computing = store.computing()
    for _ in range(CONCURRENT_STEPS):  # steps wait for a free slot: the second page's step stays in flight
        computing.acquire()
    try:
        second.keyboard.down("ArrowLeft")
        second.wait_for_function("() => window.videogptPlay.busy", timeout=TIMEOUT_MS)
        time.sleep(0.5)
        second.close()  # in the middle of its step
    finally:
        for _ in range(CONCURRENT_STEPS):
            computing.release()
    deadline = time.time() + 30
    while len(store) >= players and time.time() < deadline:
        time.sleep(0.2)
    assert len(store) == players - 1, "the world of the closed page was not freed"
    for count in (1, 2):  # the other page plays on
        first.keyboard.down("ArrowUp")
        first.keyboard.up("ArrowUp")
        wait_idle(first, count)
    assert player_of(demo, first).session.n_steps == 2
    first.close()
    assert not first_errors and not second_errors, f"JavaScript errors: {first_errors} {second_errors}"
