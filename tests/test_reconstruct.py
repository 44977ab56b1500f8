"""`videogpt reconstruct`: scores in one JSON object, a readable side-by-side video, codecs at other sizes, and
clear errors for bad inputs."""
import json
import math
import re

import numpy as np
import pytest

from tiny_models import tiny_pipeline, tiny_vqvae
from videogpt_core.cli.main import main
from videogpt_core.codecs.comparison_video import HEADER_PX
from videogpt_core.codecs.reconstruct import load_codec, reconstruct_clip
from videogpt_core.io.video_io import read_video, write_mp4
from videogpt_core.models.checkpoints import save_pipeline

KEYS = {"psnr", "psnr_per_frame", "ssim", "bits", "raw_bits", "compression_ratio", "codebook_usage"}


def moving_video(n_frames: int, height: int = 30, width: int = 40) -> np.ndarray:
    """A bright square sliding over a gradient: uint8 (T, H, W, 3)."""
    ys, xs = np.mgrid[0:height, 0:width]
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for t in range(n_frames):
        frames[t, ..., 0] = (xs * 255 // width).astype(np.uint8)
        frames[t, ..., 1] = (ys * 255 // height).astype(np.uint8)
        frames[t, ..., 2] = 60
        frames[t, 8:18, 2 * t: 2 * t + 10] = 230
    return frames


@pytest.fixture(scope="module")
def codecs(tmp_path_factory):
    root = tmp_path_factory.mktemp("codecs")
    tiny_vqvae(seed=3).save_pretrained(root / "bare")
    pipeline = tiny_pipeline(seed=5)
    save_pipeline(root / "pipe", pipeline.vqvae, pipeline.prior)
    return root


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    write_mp4(path, moving_video(10), fps=8)
    return path


def run(capsys, *argv):
    status = main(["reconstruct", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_scores_and_side_by_side_video(codecs, clip, tmp_path, capsys):
    out = tmp_path / "side.mp4"
    status, stdout, stderr = run(capsys, clip, "--checkpoint", codecs / "bare", "--checkpoint", codecs / "pipe",
                                 "--resolution", 16, "--scale", 2, "--out", out)
    assert status == 0, stderr
    report = json.loads(stdout)
    assert report["frames"] == 10 and report["resolution"] == 16 and report["fps"] == pytest.approx(8)
    assert [codec["name"] for codec in report["codecs"]] == ["bare", "pipe"]
    raw_bits = 10 * 16 * 16 * 3 * 8
    for codec in report["codecs"]:
        assert KEYS <= set(codec)
        assert len(codec["psnr_per_frame"]) == 10 and all(math.isfinite(v) for v in codec["psnr_per_frame"])
        assert codec["psnr"] == pytest.approx(np.mean(codec["psnr_per_frame"]), abs=1e-2)
        assert -1 <= codec["ssim"] <= 1
        # 10 frames / 2 per latent slice = 5 slices of 4x4 latents, 16 codes = 4 bits each.
        assert codec["latent_shape"] == [5, 4, 4] and codec["bits"] == 5 * 4 * 4 * 4
        assert codec["raw_bits"] == raw_bits and codec["compression_ratio"] == pytest.approx(raw_bits / 320, rel=1e-3)
        assert 1 <= codec["codebook_usage"] <= 16
        assert 0 <= codec["code_stability"] <= 1
        # The block-mean baseline of the same grid: 5 x 4 x 4 blocks of 24 bits, its PSNR scored as the codec's.
        assert codec["baseline_bits"] == 5 * 4 * 4 * 24 and math.isfinite(codec["baseline_psnr"])
    frames = read_video(out)
    # Two rows (reconstructions, heatmaps) of titled 32-px tiles; three columns (original + two codecs).
    assert frames.shape == (10, 2 * (HEADER_PX + 32), 3 * 32, 3)


def test_a_codec_runs_at_twice_its_training_size_and_long_clips_go_window_by_window(codecs):
    codec = load_codec(codecs / "pipe")
    assert codec.vqvae.config.resolution == 16 and codec.vqvae.config.sequence_length == 4
    clip = np.ascontiguousarray(moving_video(11, 32, 32))  # odd length: padded to 12, scored on 11
    result = reconstruct_clip(codec, clip)
    assert result.frames.shape == clip.shape and result.codes.shape == (6, 8, 8)
    assert len(result.psnr_per_frame) == 11


def test_the_folder_kinds_a_checkpoint_may_be(codecs, tmp_path):
    assert load_codec(codecs / "pipe").path == codecs / "pipe" / "vqvae"
    assert load_codec(codecs / "pipe" / "vqvae").name == "pipe"  # a bare vqvae/ is named after its parent
    with pytest.raises(ValueError, match="'prior' model, not a 'vqvae'"):
        load_codec(codecs / "pipe" / "prior")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no codec"):
        load_codec(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_codec(tmp_path / "missing")


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "notes.mp4").write_text("this is not a video\n")
    (root / "empty.mp4").write_bytes(b"")
    write_mp4(root / "one.mp4", moving_video(1), fps=8)
    write_mp4(root / "long.mp4", moving_video(14), fps=8)
    return root


@pytest.mark.parametrize("name, extra, message", [
    ("notes.mp4", [], "not a readable video|0 decodable frames|could not"),
    ("empty.mp4", [], "empty file"),
    ("one.mp4", [], "at least 2 frames"),
    ("long.mp4", ["--max-frames", 10], "more than 10 frames"),
    ("long.mp4", ["--resolution", 18], "not a multiple of 4"),
    ("long.mp4", ["--resolution", 4096], "between 16 and 512"),
    ("long.mp4", ["--frames", 1], "--frames must be between 2"),
])
def test_bad_inputs_get_clear_errors(codecs, bad_inputs, tmp_path, capsys, name, extra, message):
    out = tmp_path / "out.mp4"
    status, stdout, stderr = run(capsys, bad_inputs / name, "--checkpoint", codecs / "bare", "--out", out, *extra)
    assert status == 2 and stdout == ""
    assert "videogpt reconstruct: error:" in stderr
    assert re.search(message, stderr), stderr
    assert not out.exists()


def test_a_span_of_a_long_clip_and_bad_output_names(codecs, bad_inputs, tmp_path, capsys):
    out = tmp_path / "span.gif"
    status, stdout, stderr = run(capsys, bad_inputs / "long.mp4", "--checkpoint", codecs / "bare", "--max-frames", 10,
                                 "--start", 2, "--frames", 6, "--scale", 1, "--no-heatmaps", "--out", out)
    assert status == 0, stderr
    assert json.loads(stdout)["frames"] == 6 and out.is_file()
    status, _, stderr = run(capsys, bad_inputs / "long.mp4", "--checkpoint", codecs / "bare",
                            "--out", tmp_path / "x.txt")
    assert status == 2 and ".mp4 or .gif" in stderr


def test_code_stability_counts_codes_kept_from_one_latent_slice_to_the_next(codecs):
    codec = load_codec(codecs / "bare")
    still = np.repeat(moving_video(1, 16, 16), 8, axis=0)  # a still clip: each slice encodes the same frames
    result = reconstruct_clip(codec, still)
    assert result.code_stability == 1.0
    result.codes = np.arange(result.codes.size).reshape(result.codes.shape)  # every code new
    assert result.code_stability == 0.0
