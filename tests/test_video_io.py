"""Video and image I/O: writers produce what they promise, readers read it back, bad input fails clearly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from videogpt_core.data.transforms import (
    clip_window,
    from_model_video,
    resize_center_crop,
    to_model_video,
)
from videogpt_core.io.video_io import (
    VideoReadError,
    read_image,
    read_video,
    upscale_nearest,
    video_metadata,
    write_avi,
    write_gif,
    write_mp4,
)
from videogpt_core.io.video_probe import probe_stream


def smooth_video(n_frames: int = 10, height: int = 32, width: int = 48) -> np.ndarray:
    """A moving colour gradient: easy for codecs, and every frame differs from the last."""
    t = np.arange(n_frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    red = 40 + 3 * x + 6 * t
    green = 30 + 4 * y + 3 * t
    blue = 200 - 2 * x - 2 * y + 5 * t
    return np.clip(np.stack(np.broadcast_arrays(red, green, blue), axis=-1), 0, 255).astype(np.uint8)


def test_mp4_is_h264_yuv420p_faststart_and_reads_back(tmp_path):
    frames = smooth_video(12, 32, 48)
    path = write_mp4(tmp_path / "clip.mp4", frames, fps=8)
    stream = probe_stream(path)
    assert (stream.codec, stream.pix_fmt) == ("h264", "yuv420p")
    assert (stream.width, stream.height, stream.fps) == (48, 32, 8.0)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "+faststart puts the index before the media data"
    decoded = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames).mean() < 3.0


def test_mp4_scale_is_nearest_neighbour_and_odd_sizes_are_padded_even(tmp_path):
    frames = np.zeros((3, 5, 7, 3), np.uint8)
    frames[:, ::2, ::2] = 255  # a checkerboard-ish pattern that blurs visibly under bilinear scaling
    assert upscale_nearest(frames, 4).shape == (3, 20, 28, 3)
    np.testing.assert_array_equal(upscale_nearest(frames, 4)[:, ::4, ::4], frames)
    stream = probe_stream(write_mp4(tmp_path / "big.mp4", frames, fps=4, scale=4))
    assert (stream.width, stream.height) == (28, 20)
    odd = probe_stream(write_mp4(tmp_path / "odd.mp4", smooth_video(3, 33, 47), fps=4))
    assert (odd.width, odd.height, odd.pix_fmt) == (48, 34, "yuv420p")
    with pytest.raises(ValueError, match="scale"):
        write_mp4(tmp_path / "x.mp4", frames, fps=4, scale=1.5)


def test_writers_refuse_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "f.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=4)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_gif(tmp_path / "f.gif", np.zeros((8, 8, 3), np.uint8), fps=4)
    with pytest.raises(ValueError, match="fps"):
        write_avi(tmp_path / "f.avi", np.zeros((2, 8, 8, 3), np.uint8), fps=0)


def test_gif_round_trip_loops_and_keeps_frames(tmp_path):
    frames = smooth_video(6, 16, 16)
    path = write_gif(tmp_path / "clip.gif", frames, fps=10, scale=2)
    with Image.open(path) as image:
        assert image.info["loop"] == 0 and image.n_frames == 6
        assert image.info["duration"] == 100
    decoded = read_video(path)
    assert decoded.shape == (6, 32, 32, 3)
    # Palette quantisation of a smooth gradient costs a little.
    assert np.abs(decoded[:, ::2, ::2].astype(int) - frames).mean() < 6.0
    assert read_video(path, max_frames=2, start_frame=3).shape == (2, 32, 32, 3)
    assert video_metadata(path).n_frames == 6


def test_avi_round_trip_and_clip_reading(tmp_path):
    frames = smooth_video(9, 24, 32)
    path = write_avi(tmp_path / "clip.avi", frames, fps=25)
    assert probe_stream(path).codec == "mjpeg"
    meta = video_metadata(path)
    assert (meta.n_frames, meta.width, meta.height, meta.fps) == (9, 32, 24, 25.0)
    decoded = read_video(path)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 4.0
    window = read_video(path, max_frames=3, start_frame=4)
    np.testing.assert_array_equal(window, decoded[4:7])


def test_webm_is_read_too(tmp_path):
    import subprocess

    import imageio_ffmpeg

    frames = smooth_video(5, 16, 16)
    path = tmp_path / "clip.webm"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", "16x16", "-r", "5", "-i", "-", "-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "20", str(path)]
    subprocess.run(command, input=frames.tobytes(), check=True)
    decoded = read_video(path)
    assert decoded.shape == (5, 16, 16, 3)


def test_unreadable_videos_raise_value_errors_naming_the_file(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    for path in (text, empty):
        with pytest.raises(ValueError, match=path.name) as error:
            read_video(path)
        assert isinstance(error.value, VideoReadError)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="0 decodable frames"):
        read_video(write_avi(tmp_path / "short.avi", smooth_video(3), fps=5), start_frame=10)


def test_read_image_flattens_alpha_onto_white_and_expands_gray_and_palette(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # one opaque red pixel, the rest fully transparent
    rgba[1, 1, 3] = 128
    out = read_image(rgba)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[2, 2], [255, 255, 255])
    np.testing.assert_allclose(out[1, 1], [228, 127, 127], atol=1)
    assert read_image(rgba, background=(0, 0, 0))[2, 2].tolist() == [0, 0, 0]

    gray = Image.fromarray(np.arange(20, dtype=np.uint8).reshape(4, 5) * 10)
    gray.save(tmp_path / "gray.png")
    from_file = read_image(tmp_path / "gray.png")
    assert from_file.shape == (4, 5, 3)
    np.testing.assert_array_equal(from_file[..., 0], from_file[..., 2])
    assert from_file[3, 4, 1] == 190

    palette = Image.fromarray(np.stack([np.full((4, 5), 10), np.full((4, 5), 20), np.full((4, 5), 30)], -1)
                              .astype(np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert palette.mode == "P"
    np.testing.assert_array_equal(read_image(palette)[0, 0], [10, 20, 30])

    transparent_palette = Image.new("P", (3, 3), 1)
    transparent_palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    transparent_palette.info["transparency"] = 1
    transparent_palette.save(tmp_path / "clear.png")
    np.testing.assert_array_equal(read_image(tmp_path / "clear.png")[1, 1], [255, 255, 255])

    assert read_image(np.ones((3, 3), np.float32) * 0.5)[0, 0].tolist() == [128, 128, 128]
    assert read_image(np.full((2, 2, 1), 65535, np.uint16))[0, 0].tolist() == [255, 255, 255]


def test_read_image_refuses_huge_images_and_junk(tmp_path):
    Image.new("RGB", (60, 50)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="over the limit"):
        read_image(tmp_path / "big.png", max_pixels=2999)
    assert read_image(tmp_path / "big.png", max_pixels=3000).shape == (50, 60, 3)
    with pytest.raises(ValueError, match="over the limit"):
        read_image(np.zeros((100, 100, 3), np.uint8), max_pixels=100)
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(ValueError, match="fake.png"):
        read_image(tmp_path / "fake.png")
    with pytest.raises(ValueError, match="shape|must be"):
        read_image(np.zeros((4, 4, 2), np.uint8))


def test_resize_center_crop_any_aspect():
    wide = np.zeros((2, 40, 80, 3), np.uint8)
    wide[:, :, 20:60] = 255  # the centre square is white, the sides black
    out = resize_center_crop(wide, 16)
    assert out.shape == (2, 16, 16, 3)
    assert out.min() == 255
    tall = np.zeros((1, 90, 30, 3), np.uint8)
    assert resize_center_crop(tall, 64).shape == (1, 64, 64, 3)  # upscaling works too
    odd = np.zeros((1, 33, 17, 3), np.uint8)
    assert resize_center_crop(odd, 16).shape == (1, 16, 16, 3)


def test_model_video_round_trip_and_clamping():
    frames = np.random.default_rng(0).integers(0, 256, (4, 6, 7, 3), dtype=np.uint8)
    video = to_model_video(frames)
    assert video.shape == (3, 4, 6, 7) and video.dtype == torch.float32
    assert video.min() >= -0.5 and video.max() <= 0.5
    np.testing.assert_array_equal(from_model_video(video), frames)
    batch = torch.stack([video + 2.0, video - 2.0])  # a decoder's overshoot is clamped to 255 / 0
    out = from_model_video(batch)
    assert out.shape == (2, 4, 6, 7, 3) and out.dtype == np.uint8
    assert (out[0] == 255).all() and (out[1] == 0).all()
    with pytest.raises(ValueError, match="uint8"):
        to_model_video(frames.astype(np.float32))


def test_clip_window():
    rng = np.random.default_rng(0)
    starts = {clip_window(20, 4, 2, rng) for _ in range(200)}
    assert starts == set(range(0, 20 - 7 + 1))  # span (4 - 1) * 2 + 1 = 7
    assert clip_window(7, 4, 2, None) == 0
    with pytest.raises(ValueError, match="too short"):
        clip_window(6, 4, 2, rng)
