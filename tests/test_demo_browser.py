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
    from test_demo_server import slowed

    _, registry, _ = demo_server
    with slowed(registry, "pusher-tiny", delay=1.0) as slow:  # a second a slice: Stop lands before the third under load
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


# ---- what a first look shows -------------------------------------------------------------------------


def test_before_any_generation_no_seed_is_shown_and_stop_is_not_red(page):
    assert not page.locator("#seed-used").is_visible()  # an empty number box would read "Seed used: 0"
    assert "stop" not in page.locator("#stop").get_attribute("class").split()
    assert "primary" in page.locator("#continue").get_attribute("class").split()  # grey looked disabled


def test_a_result_shows_its_seed_and_stop_is_red_only_while_running(page, demo_server):
    from test_demo_server import slowed

    _, registry, _ = demo_server
    with slowed(registry, "pusher-tiny", delay=0.5):
        pick_first_example(page)
        page.locator("#generate").click()
        page.wait_for_function("() => document.querySelector('#stop').classList.contains('stop')", timeout=TIMEOUT_MS)
        page.wait_for_function("() => document.querySelector('#progress').innerText.includes('Done:')",
                               timeout=TIMEOUT_MS)
        page.wait_for_function("() => !document.querySelector('#stop').classList.contains('stop')",
                               timeout=TIMEOUT_MS)
        page.wait_for_selector("#seed-used", state="visible", timeout=TIMEOUT_MS)
        assert page.locator("#seed-used input").input_value().isdigit()


def test_an_error_is_one_lasting_message_not_badges_on_every_panel(page):
    page.locator("#generate").click()  # no first frame picked
    toast = page.locator(".toast-body", has_text="starts from a first frame")
    toast.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('#stop').classList.contains('stop')", timeout=TIMEOUT_MS)
    for panel in ("#preview", "#result-video", "#result-gif", "#continue-sample"):
        assert "Error" not in page.locator(panel).inner_text(), f"error badge on {panel}"
    time.sleep(11)  # Gradio's toasts used to vanish after 10 s
    assert toast.is_visible()


def test_an_error_closes_when_the_user_tries_again(page):
    page.locator("#generate").click()  # no first frame picked
    toast = page.locator("[data-testid='toast-body']", has_text="starts from a first frame")
    toast.wait_for(timeout=TIMEOUT_MS)
    pick_first_example(page)
    page.locator("#generate").click()
    toast.wait_for(state="hidden", timeout=15_000)  # it was about the last try
    page.wait_for_function("() => document.querySelector('#progress').innerText.includes('Done:')",
                           timeout=TIMEOUT_MS)


def test_actions_from_the_text_leave_no_preset_named(page):
    page.locator("#preset").get_by_text("circle").click()
    page.wait_for_function("() => document.querySelector('#actions').innerText.includes('1.77')",
                           timeout=TIMEOUT_MS)
    assert page.locator("#preset input:checked").count() == 1
    page.locator("#actions-text textarea").fill("1,0 x3")
    page.locator("#use-text").click()
    page.wait_for_function("() => !document.querySelector('#actions').innerText.includes('1.77')",
                           timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelectorAll('#preset input:checked').length === 0",
                           timeout=15_000)


def test_presets_fill_the_table_with_the_numbers_they_mean(page):
    page.locator("#preset").get_by_text("circle").click()
    page.wait_for_function("() => document.querySelector('#actions').innerText.includes('1.77')",
                           timeout=TIMEOUT_MS)
    import re

    assert not re.search(r"\d\.\d{4,}", page.locator("#actions").inner_text())  # no float32 noise (2.2799999)


def test_the_example_frames_are_those_of_the_chosen_models_world(page):
    def captions():
        return page.locator("#example-frames").inner_text()

    assert "pusher" in captions() and "digits" not in captions()
    page.locator("#model input").click()
    page.get_by_role("option", name="digits-tiny").click()
    page.wait_for_function("() => document.querySelector('#example-frames').innerText.includes('digits')",
                           timeout=TIMEOUT_MS)
    assert "pusher" not in captions()


def test_model_card_table_headers_do_not_break_inside_words(page, demo_server):
    _, registry, _ = demo_server
    readme = registry.info("pusher-tiny").path / "README.md"
    shutil.copy(Path(__file__).resolve().parents[1] / "checkpoints" / "pusher" / "README.md", readme)
    try:
        page.set_viewport_size({"width": 900, "height": 1200})
        page.locator("#model input").click()
        page.get_by_role("option", name="digits-tiny").click()  # re-reads the card when switching back
        page.locator("#model input").click()
        page.get_by_role("option", name="pusher-tiny").click()
        page.get_by_role("tab", name="Model").click()
        page.wait_for_selector("#model-card th", timeout=TIMEOUT_MS)
        lines = page.locator("#model-card th").evaluate_all("""cells => cells.map(cell => {
            const range = document.createRange(); range.selectNodeContents(cell);
            return [cell.innerText, new Set([...range.getClientRects()].map(r => Math.round(r.top))).size];
        })""")
        assert lines and all(count == 1 for _, count in lines), lines
    finally:
        readme.unlink()


def show_model_card(page, name: str, other: str = "digits-tiny") -> None:
    """The Model tab of `name`, re-read from its folder (the card is read when the model is picked)."""
    for pick in (other, name):
        page.locator("#model input").click()
        page.get_by_role("option", name=pick).click()
    page.get_by_role("tab", name="Model").click()


def test_model_card_pictures_beside_the_card_are_shown(page, demo_server):
    from demo_helpers import still_image

    _, registry, _ = demo_server
    folder = registry.info("pusher-tiny").path
    readme, picture = folder / "README.md", still_image(folder / "ROLLOUTS.png", size=(48, 32))
    readme.write_text("# pusher-tiny\n\nReal and sampled rollouts:\n\n![rollouts](ROLLOUTS.png)\n")
    try:
        show_model_card(page, "pusher-tiny")
        page.wait_for_function("() => { const img = document.querySelector('#model-card img'); "
                               "return img && img.complete; }", timeout=TIMEOUT_MS)
        assert page.locator("#model-card img").evaluate("img => img.naturalWidth") == 48  # 0: a broken link
    finally:
        readme.unlink()
        picture.unlink()


def thread_wakeups() -> dict[str, int]:
    """Voluntary context switches of each thread of this process: a thread that polls wakes up each time."""
    counts = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # the thread ended
            continue
        counts[task.name] = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return counts


def test_an_idle_demo_with_a_page_open_leaves_the_cpu_idle(page):
    time.sleep(2)  # let the page's start-up requests finish
    wakeup_rates, shares = [], []
    for _ in range(3):
        start_wakeups, start_cpu, start = thread_wakeups(), time.process_time(), time.perf_counter()
        time.sleep(3)
        seconds = time.perf_counter() - start
        shares.append((time.process_time() - start_cpu) / seconds)
        wakeups = {thread: count - start_wakeups.get(thread, 0) for thread, count in thread_wakeups().items()}
        wakeup_rates.append(max(wakeups.values()) / seconds)
    # The server runs in this process. With Gradio's 1 ms queue poll its busiest thread woke ~1,000 times a
    # second and the process used 1.7-2.3 % of a core; with the idle poll it wakes ~30 times a second and uses
    # 0.6-1.0 % (2026-12-06, two trainers beside it). Wake-ups count the poll whatever the machine's load; the
    # CPU share catches a thread that spins without sleeping. The quietest of three windows counts: one window
    # can catch the process's other threads finishing earlier work.
    assert min(wakeup_rates) < 200, f"the idle demo's busiest thread woke {min(wakeup_rates):.0f} times a second"
    assert min(shares) < 0.02, f"the idle demo used {min(shares):.1%} of a core at least (windows: {shares})"
