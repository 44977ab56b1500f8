"""The demo's Reconstruct tab: codecs found under the checkpoint folders (pipelines' vqvae/ and bare codec
folders), one clip through several codecs (called directly, through gradio_client and in headless Chromium),
and bad input answered with clear errors while the server keeps serving."""
from __future__ import annotations

import json
import math
import re
import shutil
import time
import urllib.request
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from demo_helpers import make_checkpoints, moving_square_video, running_demo, still_image
from tiny_models import tiny_vqvae

from demo.output_store import OutputStore
from demo.reconstruct_tab import MAX_FRAMES, CodecRegistry, reconstruct
from videogpt_core.codecs.codec_baseline import block_means
from videogpt_core.codecs.reconstruct import compare_codecs, load_codec, prepare_clip
from videogpt_core.io.video_io import read_video, write_gif, write_mp4
from videogpt_core.io.video_probe import probe_stream
from videogpt_core.models.model_folders import find_codec_folders

GENERAL = "general-codec-2x4x4"
REPORT_KEYS = {"psnr", "psnr_per_frame", "ssim", "bits", "raw_bits", "compression_ratio", "codebook_usage"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Three tiny pipelines, a bare codec folder (as the general codecs ship) and a vqvae/ folder that holds a
    prior: a folder of the wrong kind."""
    root = tmp_path_factory.mktemp("checkpoints")
    folders = make_checkpoints(root)
    tiny_vqvae(7, sequence_length=4).save_pretrained(root / GENERAL / "vqvae")
    (root / GENERAL / "README.md").write_text("# general codec\n")
    shutil.copytree(folders["pusher-tiny"] / "prior", root / "wrong-kind" / "vqvae")
    return root


@pytest.fixture(scope="module")
def codecs(root) -> CodecRegistry:
    return CodecRegistry.from_paths([root], device="cpu")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> OutputStore:
    return OutputStore(tmp_path_factory.mktemp("outputs"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_mp4(tmp_path_factory.mktemp("clips") / "square.mp4", moving_square_video(10, 24), 10)


# ----------------------------------------------------------------------------- finding codecs


def test_codecs_are_found_in_pipeline_and_bare_codec_folders(root, codecs):
    assert codecs.names == [GENERAL, "digits-tiny", "pusher-tiny", "uncond-tiny"]  # the general codecs first
    assert codecs.infos[GENERAL].path == root / GENERAL / "vqvae" and codecs.infos[GENERAL].general
    assert not codecs.infos["pusher-tiny"].general
    # The folder of the wrong kind is reported, not served.
    assert len(codecs.problems) == 1 and "wrong-kind" in codecs.problems[0]
    assert "holds a 'prior' model, not a 'vqvae'" in codecs.problems[0]
    assert "could not read codec" in codecs.status_message()
    # Each kind of folder given on its own.
    assert find_codec_folders([root / GENERAL / "vqvae"]) == {GENERAL: root / GENERAL / "vqvae"}
    assert find_codec_folders([root / "digits-tiny"]) == {"digits-tiny": root / "digits-tiny" / "vqvae"}
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        find_codec_folders([root / "missing"])
    assert find_codec_folders([root / "missing"], must_exist=False) == {}
    empty = CodecRegistry({})
    assert "No codec found" in empty.status_message()


def test_default_codecs_are_those_of_the_served_pipelines(root):
    from demo.model_registry import ModelRegistry

    registry = ModelRegistry.from_paths([root], device="cpu")
    assert CodecRegistry.from_models(registry).names == ["digits-tiny", "pusher-tiny", "uncond-tiny"]


# ----------------------------------------------------------------------------- the comparison


def test_two_codecs_side_by_side_with_the_library_scores(codecs, store, clip):
    result = reconstruct(codecs, store, str(clip), [GENERAL, "pusher-tiny"], 64, 8)
    stream = probe_stream(result.video)
    assert (stream.codec, stream.pix_fmt) == ("h264", "yuv420p")
    # Original + two codecs, 64 px tiles shown at 256 px; a row of reconstructions and a row of heatmaps.
    assert (stream.width, stream.height) == (3 * 256, 2 * (14 + 256))
    assert len(read_video(result.video)) == 8
    # The numbers are the library's (what `videogpt reconstruct` prints) for the same clip.
    frames = read_video(clip, max_frames=8)
    _, _, expected = compare_codecs([load_codec(codecs.infos[name].path) for name in (GENERAL, "pusher-tiny")],
                                    frames, 64)
    assert [c["name"] for c in result.report["codecs"]] == [GENERAL, "pusher-tiny"]
    for mine, theirs in zip(result.report["codecs"], expected["codecs"]):
        assert REPORT_KEYS <= set(mine)
        assert mine["psnr_per_frame"] == pytest.approx(theirs["psnr_per_frame"], abs=1e-3)
        assert mine["bits"] == theirs["bits"] and mine["codebook_usage"] == theirs["codebook_usage"]
        assert mine["baseline_psnr"] == pytest.approx(theirs["baseline_psnr"], abs=1e-3)
    # One plot: 8 frames per codec, colour by codec.
    assert list(result.psnr.columns) == ["frame", "psnr_db", "codec"] and len(result.psnr) == 16
    assert set(result.psnr["codec"]) == {GENERAL, "pusher-tiny"}
    assert np.isfinite(result.psnr["psnr_db"]).all()
    # 8 frames of 64x64 RGB before; 4x16x16 codes of log2(16) = 4 bits after.
    row = result.scores.set_index("codec").loc[GENERAL]
    assert result.report["raw_bits"] == 8 * 64 * 64 * 3 * 8 and row["bits"] == 4 * 16 * 16 * 4
    assert f"{8 * 64 * 64 * 3 * 8:,} bits of raw RGB" in result.summary
    assert row["ratio"] == f"{8 * 64 * 64 * 3 * 8 / (4 * 16 * 16 * 4):.1f}×"
    assert row["codes"] == "4×16×16" and row["codes used"].endswith("of 16")
    # Beside each codec, the PSNR of keeping the mean colour of each block of its latent grid (2x4x4 here).
    prepared = prepare_clip(frames, 64).astype(np.float64)
    mse = ((prepared - block_means(prepare_clip(frames, 64), (2, 4, 4))) ** 2).mean(axis=(1, 2, 3))
    baseline = np.mean(10 * np.log10(255.0 ** 2 / mse))
    assert row["block means (dB)"] == pytest.approx(baseline, abs=0.01) and "*block means*" in result.summary
    assert 0 < row["SSIM"] <= 1 and f"{GENERAL} 4 frames (2 windows)" in result.summary  # 8 frames
    assert [caption.split(":")[0] for _, caption in result.codes] == [GENERAL, "pusher-tiny"]
    json.dumps(result.report)  # the JSON output is JSON


def test_128_pixels_and_a_long_clip_capped_with_a_message(codecs, store, tmp_path):
    long_clip = write_mp4(tmp_path / "long.mp4", moving_square_video(30, 24), 10)
    result = reconstruct(codecs, store, str(long_clip), ["uncond-tiny"], 128, 12)
    assert result.report["resolution"] == 128 and result.report["frames"] == 12
    assert "only its first 12 frames were reconstructed" in result.summary
    assert "uncond-tiny 6 frames (2 windows)" in result.summary  # 12 frames, 6-frame windows
    assert probe_stream(result.video).width == 2 * 128 * 2
    short = reconstruct(codecs, store, str(long_clip), ["uncond-tiny"], 64, MAX_FRAMES)
    assert short.report["frames"] == 30 and "longer" not in short.summary


def test_odd_frame_sizes_are_resized_and_cropped(codecs, store, tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 17, 31, 3), dtype=np.uint8)
    result = reconstruct(codecs, store, str(write_gif(tmp_path / "odd.gif", frames, 10)), [GENERAL], 64, 16)
    assert result.report["frames"] == 5 and len(result.psnr) == 5  # 5 frames: the codec pads to 6 and cuts


def bad_files(folder: Path) -> dict[str, Path]:
    text = folder / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    empty = folder / "empty.webm"
    empty.write_bytes(b"")
    big = write_mp4(folder / "big.mp4", np.zeros((2, 1200, 2000, 3), np.uint8), 10)
    canvas = folder / "canvas.gif"
    from PIL import Image

    Image.new("P", (20000, 20000)).save(canvas)
    return dict(text=text, empty=empty, big=big, canvas=canvas,
                one=write_gif(folder / "one.gif", moving_square_video(1), 10),
                thin=write_gif(folder / "thin.gif", np.random.default_rng(1).integers(0, 256, (4, 40, 1, 3), np.uint8),
                               10),
                image=still_image(folder / "still.png"))


def test_bad_input_gets_clear_errors(codecs, store, clip, tmp_path):
    files = bad_files(tmp_path)
    cases = [
        ((None, [GENERAL], 64, 8), "upload a video"),
        ((clip, [], 64, 8), "choose at least one codec"),
        ((clip, ["nope"], 64, 8), "unknown codec 'nope'; choose from: general-codec-2x4x4"),
        ((clip, [GENERAL], 100, 8), "resolution must be one of 64, 128"),
        ((clip, [GENERAL], 64, 1), "frames must be between 2 and 64"),
        ((clip, [GENERAL], 64, 10_000), "frames must be between 2 and 64, got 10000"),
        ((files["text"], [GENERAL], 64, 8), "notes.mp4 .*(not a readable video|0 decodable frames)"),
        ((files["empty"], [GENERAL], 64, 8), "empty.webm is an empty file"),
        ((files["one"], [GENERAL], 64, 8), "one.gif has 1 frame; a video needs at least 2"),
        ((files["image"], [GENERAL], 64, 8), "still.png has 1 frame"),
        ((files["thin"], [GENERAL], 64, 8), "thin.gif has frames of 1x40 pixels, too small"),
        ((files["big"], [GENERAL], 64, 8), "big.mp4 is 2000x1200; videos up to 1080p"),
        ((files["canvas"], [GENERAL], 64, 8), "canvas.gif is a 20000x20000 GIF"),
        ((tmp_path / "gone.mp4", [GENERAL], 64, 8), "not found"),
        ((tmp_path, [GENERAL], 64, 8), "is a folder, not a video"),
    ]
    for (path, names, resolution, frames), message in cases:
        with pytest.raises(gr.Error, match=message):
            reconstruct(codecs, store, None if path is None else str(path), names, resolution, frames)


# ----------------------------------------------------------------------------- the served demo


@pytest.fixture(scope="module")
def server(root, codecs):
    with running_demo([root], codecs=codecs) as running:
        yield running


@pytest.fixture(scope="module")
def ten_thousand_frames(tmp_path_factory) -> Path:
    frames = np.broadcast_to(moving_square_video(8, 16)[None], (1250, 8, 16, 16, 3)).reshape(10_000, 16, 16, 3)
    return write_mp4(tmp_path_factory.mktemp("long") / "ten-thousand.mp4", frames, 25)


@pytest.mark.slow
def test_the_tab_through_gradio_client_with_two_codecs(server, clip):
    from gradio_client import Client, handle_file

    client = Client(server[2], verbose=False)
    video, plot, scores, summary, codes, report = client.predict(
        handle_file(str(clip)), [GENERAL, "digits-tiny"], 128, 8, api_name="/reconstruct")
    assert probe_stream(video).width == 3 * 128 * 2
    assert {row[2] for row in plot["data"]} == {GENERAL, "digits-tiny"} and len(plot["data"]) == 16
    assert scores["headers"][:3] == ["codec", "PSNR (dB)", "block means (dB)"] and [r[0] for r in scores["data"]] == \
        [GENERAL, "digits-tiny"]
    assert "8 frames at 128×128" in summary and len(codes) == 2
    assert [c["name"] for c in report["codecs"]] == [GENERAL, "digits-tiny"]
    assert REPORT_KEYS <= set(report["codecs"][0])


@pytest.mark.slow
def test_bad_input_over_the_api_then_the_server_is_healthy(server, clip, tmp_path, ten_thousand_frames):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    files = bad_files(tmp_path)
    url = server[2]
    cases = [
        ((handle_file(str(files["text"])), [GENERAL], 64, 8), r"not a readable video|decodable frames|file type"),
        ((handle_file(str(files["empty"])), [GENERAL], 64, 8), r"empty file"),
        ((handle_file(str(files["one"])), [GENERAL], 64, 8), r"has 1 frame; a video needs at least 2"),
        ((handle_file(str(files["thin"])), [GENERAL], 64, 8), r"1x40 pixels, too small"),
        ((handle_file(str(files["big"])), [GENERAL], 64, 8), r"up to 1080p"),
        ((handle_file(str(clip)), ["wrong-kind"], 64, 8), r"wrong-kind"),
        ((handle_file(str(clip)), [GENERAL], 100, 8), r"100"),
        ((handle_file(str(clip)), [GENERAL], 64, 10_000), r"maximum|frames must be between"),
        ((None, [GENERAL], 64, 8), r"upload a video"),
    ]
    for args, pattern in cases:
        with pytest.raises(AppError) as caught:
            Client(url, verbose=False).predict(*args, api_name="/reconstruct")
        assert re.search(pattern, str(caught.value)), f"{args}: {caught.value}"
        assert "upstream Gradio app has raised an exception" not in str(caught.value)
    # 10,000 frames: only the first ones are decoded, and the answer says the clip was cut.
    started = time.perf_counter()
    *_, summary, _, report = Client(url, verbose=False).predict(
        handle_file(str(ten_thousand_frames)), ["uncond-tiny"], 64, MAX_FRAMES, api_name="/reconstruct")
    assert report["frames"] == MAX_FRAMES and f"only its first {MAX_FRAMES} frames" in summary
    assert time.perf_counter() - started < 60
    # The folder of the wrong kind is named on the page; the page and a good request still work.
    with urllib.request.urlopen(url + "config", timeout=30) as response:
        texts = [c.get("props", {}).get("value") for c in json.loads(response.read())["components"]]
    assert any(isinstance(t, str) and "wrong-kind" in t and "'prior'" in t for t in texts)
    outputs = Client(url, verbose=False).predict(handle_file(str(clip)), [GENERAL], 64, 8, api_name="/reconstruct")
    assert outputs[0].endswith(".mp4") and math.isfinite(outputs[5]["codecs"][0]["psnr"])


# ----------------------------------------------------------------------------- in a browser

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path("/tmp/videogpt-demo-reconstruct.png")


@pytest.mark.slow
@pytest.mark.browser
def test_upload_in_a_browser_and_see_the_comparison(server, clip):
    if not CHROMIUM.exists():
        pytest.skip(f"headless Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the Python playwright package is not installed")
    from test_demo_browser import CHROMIUM_ARGS, TIMEOUT_MS

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            page.goto(server[2], wait_until="domcontentloaded")
            page.get_by_role("tab", name="Reconstruct").click(timeout=TIMEOUT_MS)
            headers = page.locator("#recon-scores thead").inner_text().split()
            assert headers[:3] == ["codec", "PSNR", "(dB)"], headers  # an empty table read "1 2 3"
            page.locator("#recon-upload input[type=file]").set_input_files(str(clip))
            # Uploaded once the file's size is shown; the name's stem and suffix may wrap onto two lines.
            page.wait_for_function("() => /square\\.mp4.*KB/.test(document.querySelector('#recon-upload')"
                                   ".innerText.replace(/\\s/g, ''))", timeout=TIMEOUT_MS)
            with page.expect_request(lambda request: "queue/join" in request.url, timeout=TIMEOUT_MS):
                page.locator("#reconstruct").click()
            page.wait_for_function(
                "() => { const v = document.querySelector('#recon-video video'); return v && v.readyState >= 2; }",
                timeout=TIMEOUT_MS)
            assert page.locator("#recon-video video").evaluate("v => v.videoWidth") == 5 * 256  # original + 4
            scores = page.locator("#recon-scores").inner_text()
            assert all(name in scores for name in (GENERAL, "digits-tiny", "pusher-tiny", "uncond-tiny"))
            assert "block means (dB)" in " ".join(page.locator("#recon-scores thead").inner_text().split())
            page.wait_for_selector("#psnr-plot canvas, #psnr-plot svg", timeout=TIMEOUT_MS)
            assert "10 frames at 64×64" in page.locator("#recon-summary").inner_text()  # the whole clip
            assert_scores_and_codes_fully_shown(page)
        finally:
            page.screenshot(path=str(SCREENSHOT), full_page=True)  # to look at by hand
            browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def assert_scores_and_codes_fully_shown(page) -> None:
    """The scores table inside its panel (not cut off on the right); every codec's code map on screen at once,
    filling at least half its tile, with its name readable."""
    from test_demo_browser import TIMEOUT_MS

    page.wait_for_function("() => [...document.querySelectorAll('#codes-map img')].every(img => img.complete)",
                           timeout=TIMEOUT_MS)
    table, panel = (page.locator(selector).evaluate("e => e.getBoundingClientRect().right")
                    for selector in ("#recon-scores table", "#recon-scores"))
    assert table <= panel + 1, f"the scores table runs {table - panel:.0f} px past its panel"
    assert page.locator("#codes-map .grid-wrap").evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    tiles = page.locator("#codes-map .thumbnail-item").evaluate_all("""tiles => tiles.map(tile => {
        const img = tile.querySelector('img'), caption = tile.querySelector('.caption-label');
        const fit = Math.min(tile.clientWidth / img.naturalWidth, tile.clientHeight / img.naturalHeight);
        return {filled: fit * fit * img.naturalWidth * img.naturalHeight / (tile.clientWidth * tile.clientHeight),
                caption: caption.innerText, readable: caption.scrollWidth <= caption.clientWidth};
    })""")
    assert len(tiles) == 4
    for tile in tiles:
        assert tile["filled"] >= 0.5 and tile["readable"], tile
