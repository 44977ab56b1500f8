"""`videogpt sample` end to end on tiny pipelines saved to a temporary folder: files written, seeds
reproduced, conditioning files read, mistakes reported by name."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tiny_models import LONGER_VQVAE, tiny_pipeline
import videogpt_core.cli.main as cli
from videogpt_core.cli.sample import add_commands, load_actions, tile_side_by_side
from videogpt_core.io.video_io import read_video, write_mp4
from videogpt_core.io.video_probe import probe_stream
from videogpt_core.models.checkpoints import save_pipeline


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="videogpt")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sample", *argv])
    return args.func(args)


def save(tmp_path, name: str, conditioning: str, **kwargs):
    pipeline = tiny_pipeline(conditioning, **kwargs)
    return str(save_pipeline(tmp_path / name, pipeline.vqvae, pipeline.prior)), pipeline


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory):
    return save(tmp_path_factory.mktemp("ckpt"), "plain", "none")[0]


def test_writes_h264_mp4_and_gif_with_samples_side_by_side(tmp_path, plain_dir, capsys):
    mp4, gif = tmp_path / "out.mp4", tmp_path / "out.gif"
    assert run(["--checkpoint", plain_dir, "--out", str(mp4), "--gif", str(gif), "--n", "2", "--seed", "3",
                "--scale", "2", "--device", "cpu", "--quiet"]) == 0
    stream = probe_stream(mp4)
    assert (stream.codec, stream.pix_fmt) == ("h264", "yuv420p")
    assert (stream.width, stream.height) == (2 * 16 * 2, 16 * 2)  # two 16x16 samples, upscaled 2x
    assert read_video(mp4).shape == (4, 32, 64, 3)
    assert read_video(gif).shape[1:] == (32, 64, 3)
    printed = capsys.readouterr().out
    assert "seed 3" in printed and "tokens/s" in printed and "first slice" in printed


def test_same_seed_same_file_printed_seed_reproduces(tmp_path, plain_dir, capsys):
    paths = [tmp_path / f"{name}.gif" for name in ("a", "b", "c", "d")]
    run(["--checkpoint", plain_dir, "--gif", str(paths[0]), "--seed", "5", "--quiet"])
    run(["--checkpoint", plain_dir, "--gif", str(paths[1]), "--seed", "5", "--quiet"])
    run(["--checkpoint", plain_dir, "--gif", str(paths[2]), "--seed", "6", "--quiet"])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    capsys.readouterr()
    run(["--checkpoint", plain_dir, "--gif", str(paths[3]), "--quiet"])  # a fresh seed, printed first
    seed = capsys.readouterr().out.splitlines()[0].split()[1]
    again = tmp_path / "again.gif"
    run(["--checkpoint", plain_dir, "--gif", str(again), "--seed", seed, "--quiet"])
    assert again.read_bytes() == paths[3].read_bytes()


def test_gif_holds_the_pipeline_frames(tmp_path, plain_dir):
    # The gif palette is lossy, so compare loosely with what the pipeline makes for the same seed.
    from videogpt_core.inference.pipeline import load_pipeline

    gif = tmp_path / "x.gif"
    run(["--checkpoint", plain_dir, "--gif", str(gif), "--seed", "9", "--scale", "1", "--quiet"])
    expected = load_pipeline(plain_dir, device="cpu").generate(seed=9).frames[0]
    written = read_video(gif)
    assert written.shape == expected.shape
    assert np.abs(written.astype(int) - expected.astype(int)).mean() < 12


def test_frame_label_and_actions_files_with_a_long_video(tmp_path):
    checkpoint, pipeline = save(tmp_path, "all", "all")
    image = tmp_path / "first.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(image)
    n_frames = pipeline.sequence_length + 2  # longer than the window: slides once
    actions = tmp_path / "moves.txt"
    actions.write_text("# dx dy\n" + "".join(f"{0.1 * i} -0.5\n" for i in range(n_frames)))
    out = tmp_path / "out.mp4"
    assert run(["--checkpoint", checkpoint, "--frame", str(image), "--label", "jump", "--actions", str(actions),
                "--out", str(out), "--seed", "0", "--cfg-scale", "2", "--top-k", "8", "--top-p", "0.9",
                "--temperature", "0.8", "--threads", "1", "--quiet"]) == 0
    assert read_video(out).shape == (n_frames, 64, 64, 3)  # the action rows set the length; default scale 4


def test_video_file_continues_as_video_prediction(tmp_path):
    checkpoint, pipeline = save(tmp_path, "longer", "none", vqvae_overrides=LONGER_VQVAE)
    given = tmp_path / "given.mp4"
    write_mp4(given, np.random.default_rng(1).integers(0, 256, (4, 24, 24, 3), dtype=np.uint8), fps=8)
    out = tmp_path / "continued.mp4"
    assert run(["--checkpoint", checkpoint, "--frame", str(given), "--out", str(out), "--n-frames", "8",
                "--scale", "1", "--quiet"]) == 0
    assert read_video(out).shape == (8, 16, 16, 3)


def test_load_actions_formats(tmp_path):
    rows = np.array([[0.5, -1.0], [2.0, 3.0], [0.0, 0.25]], np.float32)
    np.save(tmp_path / "a.npy", rows)
    (tmp_path / "a.csv").write_text("0.5,-1\n2, 3\n\n0,0.25\n")
    (tmp_path / "a.txt").write_text("# dx dy\n0.5 -1\n2 3\n0 0.25\n")
    for name in ("a.npy", "a.csv", "a.txt"):
        np.testing.assert_array_equal(load_actions(tmp_path / name), rows)
    (tmp_path / "one.txt").write_text("1\n2\n")
    assert load_actions(tmp_path / "one.txt").shape == (2, 1)


@pytest.mark.parametrize("text, message", [
    ("1 2\nleft right\n", "line 2"), ("1 2\n3\n", "line 2"), ("# nothing\n", "no action rows"),
])
def test_load_actions_names_the_bad_line(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_actions(path)


def test_load_actions_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_actions(tmp_path / "missing.txt")
    (tmp_path / "a.json").write_text("[]")
    with pytest.raises(ValueError, match=r"\.npy"):
        load_actions(tmp_path / "a.json")


def test_tile_side_by_side_keeps_sample_order():
    frames = np.zeros((3, 2, 4, 5, 3), np.uint8)
    for i in range(3):
        frames[i] = i
    tiled = tile_side_by_side(frames)
    assert tiled.shape == (2, 4, 15, 3)
    assert [tiled[0, 0, 5 * i, 0] for i in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("argv, message", [
    ([], "--out"), (["--out", "x.avi"], "mp4"), (["--out", "x.mp4", "--scale", "0"], "--scale"),
    (["--out", "x.mp4", "--label", "run"], "label"), (["--out", "x.mp4", "--temperature", "0"], "temperature"),
    (["--out", "x.mp4", "--top-k", "0"], "top_k"), (["--out", "x.mp4", "--n", "0"], "n "),
    (["--out", "x.mp4", "--cfg-scale", "2"], "cfg_scale"),
])
def test_mistakes_are_value_errors_naming_the_option(tmp_path, plain_dir, argv, message):
    argv = [a if not a.startswith("x.") else str(tmp_path / a) for a in argv]
    with pytest.raises(ValueError, match=message):
        run(["--checkpoint", plain_dir, "--quiet", *argv])
    assert not list(tmp_path.glob("x.*"))


def test_missing_checkpoint_and_frame_files(tmp_path, plain_dir):
    with pytest.raises(FileNotFoundError):
        run(["--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.mp4")])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        run(["--checkpoint", plain_dir, "--frame", str(tmp_path / "nope.png"), "--out", str(tmp_path / "x.mp4")])


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--checkpoint", "--frame", "--label", "--actions", "--out", "--gif", "--n ", "--temperature",
                   "--top-k", "--top-p", "--cfg-scale", "--seed", "--n-frames", "--threads", "--device", "--scale"):
        assert option in text, option


def test_help_gives_each_shipped_models_action_columns(capsys):
    with pytest.raises(SystemExit):
        run(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "'dx dy' row" not in text  # vizdoom takes 3 values a frame, fetchpush 4
    shipped = Path(__file__).resolve().parents[1] / "checkpoints"
    widths = {folder.parent.name: json.loads((folder / "config.json").read_text()).get("action_dim")
              for folder in shipped.glob("*/prior")}
    acting = {name: width for name, width in widths.items() if width}
    assert {"pusher", "vizdoom", "fetchpush"} <= set(acting)
    for name, width in acting.items():
        assert f"checkpoints/{name} {width} (" in text, name


# ---- the command line's bad-input corpus: exit status 2, one line naming the problem, no traceback -------


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory):
    """Pipeline folders that are broken in one way each, and a ranged action-conditional one."""
    root = tmp_path_factory.mktemp("bad-checkpoints")
    folders = {}
    for name, edit in {"string-field": lambda c: {**c, "n_layers": "4"}, "list-config": lambda c: [c],
                       "null-config": lambda c: None}.items():
        folders[name] = save(root, name, "none")[0]
        path = root / name / "prior" / "config.json"
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    pipeline = tiny_pipeline("none")
    with torch.no_grad():
        pipeline.prior.fc_out.weight[0, 0] = float("nan")
    folders["nan-weights"] = str(save_pipeline(root / "nan-weights", pipeline.vqvae, pipeline.prior))
    folders["ranged"] = save(root, "ranged", "actions", action_range=[[-3.0, 3.0], [-3.0, 3.0]])[0]
    folders["plain"] = save(root, "plain", "none")[0]
    (root / "far.txt").write_text("0 0\n1e6 0\n0 0\n0 0\n")
    (root / "near.txt").write_text("0 0\n3 -3\n0 0\n0 0\n")
    existing = root / "data" / "digits.hdf5"
    existing.parent.mkdir()
    existing.write_bytes(b"a data set that took hours")
    return root, folders


def cli_bad_inputs(root, folders):
    """(name, argv, expected message pattern) for `videogpt ...`; 'OUT' is replaced by a fresh output path."""
    sample = ["sample", "--quiet", "--out", "OUT"]
    return [
        ("unknown device", [*sample, "--checkpoint", folders["plain"], "--device", "tpu9"], r"'tpu9' is not a torch"),
        ("scale 1000", [*sample, "--checkpoint", folders["plain"], "--scale", "1000"],
         r"--scale 1000 makes 16000x16000 frames .* at most 4096 pixels a side: use --scale 256 or less"),
        ("fps nan", [*sample, "--checkpoint", folders["plain"], "--fps", "nan"], r"--fps must be a finite number"),
        ("fps inf", [*sample, "--checkpoint", folders["plain"], "--fps", "inf"], r"--fps must be a finite number"),
        ("negative seed", [*sample, "--checkpoint", folders["plain"], "--seed", "-1"],
         r"--seed must be a whole number between 0 and"),
        ("string-typed config field", [*sample, "--checkpoint", folders["string-field"]],
         r"prior/config.json: field 'n_layers' must be int, got '4'"),
        ("config that is a list", [*sample, "--checkpoint", folders["list-config"]],
         r"config.json: must be a JSON object of VideoGPTConfig fields, got list"),
        ("config that is null", [*sample, "--checkpoint", folders["null-config"]], r"got NoneType"),
        ("NaN weights", [*sample, "--checkpoint", folders["nan-weights"]],
         r"nan-weights/prior/model.safetensors: 1 tensor\(s\) hold NaN or infinite values"),
        ("action far outside the trained range", [*sample, "--checkpoint", folders["ranged"], "--actions",
                                                  str(root / "far.txt")],
         r"action row 2, column 1 = 1e\+06 is outside the range this model was trained on \(column 1 in \[-3, 3\]"),
        ("make-dataset over an existing file", ["make-dataset", "digits", "--out", str(root / "data"), "--n", "1",
                                                "--frames", "2", "--quiet"],
         r"digits.hdf5 already exists; pass --overwrite"),
    ] + ([] if torch.cuda.is_available() else [
        ("cuda on a CPU-only torch", [*sample, "--checkpoint", folders["plain"], "--device", "cuda"],
         r"sees no CUDA GPU .* use --device cpu"),
    ])


def test_every_bad_command_line_gets_one_clear_line_and_status_2(bad_checkpoints, capsys):
    root, folders = bad_checkpoints
    cases = cli_bad_inputs(root, folders)
    for index, (name, argv, pattern) in enumerate(cases):
        out = root / f"out-{index}.mp4"
        argv = [str(out) if a == "OUT" else a for a in argv]
        status = cli.main(argv)
        printed = capsys.readouterr()
        assert status == 2, f"{name}: exit status {status}"
        assert re.search(pattern, printed.err), f"{name}: unexpected message {printed.err!r}"
        assert printed.err.count("\n") == 1 and "Traceback" not in printed.err, f"{name}: {printed.err!r}"
        assert "sampled and decoded" not in printed.out, f"{name}: refused only after sampling"
        assert not out.exists(), name
    assert (root / "data" / "digits.hdf5").read_bytes() == b"a data set that took hours"


def test_the_corpus_commands_work_once_the_input_is_right(bad_checkpoints, tmp_path, capsys):
    root, folders = bad_checkpoints
    out = tmp_path / "near.mp4"
    assert cli.main(["sample", "--quiet", "--checkpoint", folders["ranged"], "--actions", str(root / "near.txt"),
                     "--out", str(out), "--scale", "1", "--seed", "0"]) == 0
    assert read_video(out).shape == (4, 16, 16, 3)
    assert cli.main(["make-dataset", "digits", "--out", str(root / "data"), "--n", "1", "--frames", "2", "--quiet",
                     "--overwrite"]) == 0
    assert (root / "data" / "digits.hdf5").read_bytes()[:4] == b"\x89HDF"
    capsys.readouterr()


def test_encode_dataset_help_states_each_default_once_and_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["encode-dataset", "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and not re.search(r"\(default: [^)]*\) \(default:", text.replace("\n", " "))
    options = re.findall(r"^  (--[a-z-]+)(.*)$", text, flags=re.M)
    assert len(options) >= 12
    for option, rest in options:
        if option == "--help":
            continue
        after = text.split(option, 1)[1].split("\n  --", 1)[0]
        words = re.sub(r"^[ A-Z_{},.-]*", "", after.replace("\n", " ")).strip()
        assert len(words) > 10, f"{option} has no help: {after!r}"
