"""The demo in a real browser (headless Chromium via Playwright): pick an example frame, Generate, and wait
until the result video can play; Stop cancels a running generation."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--headless", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT_COPY = Path("/tmp/videogpt-demo-browser.png")  # a copy outside tmp_path, to look at by hand
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"headless Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the Python playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(demo_server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Gradio keeps a connection open, so "network idle" never comes: wait for the app's own elements.
    page.goto(demo_server[2], wait_until="domcontentloaded")
    page.wait_for_selector("#example-frames button.thumbnail-item img", timeout=TIMEOUT_MS)
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def pick_first_example(page) -> None:
    page.locator("#example-frames button.thumbnail-item").first.click()
    # The picked frame shows up in the first-frame input.
    page.wait_for_selector("#start-image img", timeout=TIMEOUT_MS)


def test_generate_from_an_example_until_the_video_plays(page, tmp_path):
    pick_first_example(page)
    page.locator("#generate").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#result-video video'); return v && v.readyState >= 2; }",
        timeout=TIMEOUT_MS)
    video = page.locator("#result-video video")
    assert video.evaluate("v => v.videoWidth") > 0
    assert video.evaluate("v => v.duration") > 0
    assert "Done:" in page.locator("#progress").inner_text()
    assert page.locator("#preview img").count() == 1
    seed_used = page.locator("#seed-used input").input_value()
    assert seed_used.isdigit()
    screenshot = tmp_path / "demo-generate.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    shutil.copy(screenshot, SCREENSHOT_COPY)


def test_stop_cancels_a_running_generation(page, demo_server):
    from test_demo_server import SlowPipeline

    _, registry, _ = demo_server
    real = registry.pipeline("pusher-tiny")
    slow = SlowPipeline(real, delay=0.5)
    registry._pipelines["pusher-tiny"] = slow
    try:
        pick_first_example(page)
        page.locator("#generate").click()
        deadline = time.time() + 30
        while slow.slices < 1 and time.time() < deadline:
            time.sleep(0.05)
        page.locator("#stop").click()
        page.wait_for_function("() => document.querySelector('#progress').innerText.includes('Stopped')",
                               timeout=TIMEOUT_MS)
        at_stop = slow.slices
        time.sleep(4 * slow.delay)
        assert slow.slices <= at_stop + 1, "sampling went on after Stop"
        assert slow.slices < 3  # the 6-frame window has 3 slices: it never finished
        assert page.locator("#result-video video").count() == 0
    finally:
        registry._pipelines["pusher-tiny"] = real


def test_controls_follow_the_chosen_model(page):
    assert page.locator("#actions").is_visible() and not page.locator("#label").is_visible()
    page.locator("#model input").click()
    page.get_by_role("option", name="digits-tiny").click()
    page.wait_for_function("() => document.querySelector('#model-summary').innerText.includes('digits-tiny')",
                           timeout=TIMEOUT_MS)
    page.wait_for_selector("#label", state="visible", timeout=TIMEOUT_MS)
    page.wait_for_selector("#actions", state="hidden", timeout=TIMEOUT_MS)
    assert "optional" in page.locator("#start-image").inner_text()
    page.get_by_role("tab", name="Model").click()
    page.wait_for_function("() => document.querySelector('#model-card').innerText.includes('a class (3)')",
                           timeout=TIMEOUT_MS)
