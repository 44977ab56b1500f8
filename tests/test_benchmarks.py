"""The benchmark harnesses: the naive sampler computes the right logits, the helpers add up, and each harness
runs end to end at the tiny size and reports what it promises (smoke runs are marked slow)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import naive_sampler, sampling, speculative, training, vqvae, weight_reads
from benchmarks.common import SIZES, build_models, format_table, measure, random_conditions
from tiny_models import tiny_pipeline, tiny_vqvae
from videogpt_core.models.checkpoints import save_pipeline
from videogpt_core.models.conditions import Conditions


@pytest.mark.parametrize("condition", ["none", "frame+actions"])
def test_naive_logits_equal_the_teacher_forced_forward(condition):
    _, prior = build_models(SIZES["tiny"], condition)
    inputs = random_conditions(prior, batch=2, device="cpu")
    codes = torch.randint(0, prior.n_codes, (2, *prior.latent_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = prior(codes, **inputs).flatten(1, 3)
        condition_ = prior.condition(Conditions(**inputs), 2)
        for position in (0, 1, 17, 31):
            naive = naive_sampler.naive_logits(prior, condition_, codes.flatten(1)[:, :position])
            torch.testing.assert_close(naive, full[:, position], atol=1e-4, rtol=1e-4)


def test_total_time_interpolates_and_fits_a_quadratic():
    flat = [(0, 1.0), (10, 1.0)]
    assert sampling.total_time(flat, 0, 20) == pytest.approx(20.0)  # flat beyond the last point
    rising = [(0, 0.0), (10, 10.0)]
    assert sampling.total_time(rising, 0, 11) == pytest.approx(55.0)
    quadratic = [(p, 2.0 + 0.5 * p + 0.1 * p * p) for p in (0, 50, 99)]
    exact = sum(2.0 + 0.5 * p + 0.1 * p * p for p in range(100))
    assert sampling.total_time(quadratic, 0, 100, quadratic=True) == pytest.approx(exact)
    assert sampling.window_starts(100, 16) == [0, 42, 83]


def test_measure_takes_a_median_and_a_slow_first_call_once():
    calls = []
    timing = measure(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=5)
    assert len(calls) == 7 and len(timing.runs) == 5 and timing.min_s <= timing.median_s
    slow = []
    timing = measure(lambda: slow.append(1), torch.device("cpu"), warmup=1, repeats=5, slow_s=0.0)
    assert len(slow) == 1 and len(timing.runs) == 1


def test_format_table_aligns_columns():
    text = format_table([dict(a="x", b=1.23456), dict(a="longer", b=1234.5)], [("a", "name"), ("b", "value")])
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert "1.23" in text and "1234" in text


def read_report(capsys, path):
    printed = capsys.readouterr().out
    result = json.loads(path.read_text())
    assert result["command"].startswith("python -m benchmarks.")
    assert result["machine"]["cores"] >= 1 and result["machine"]["torch"] == torch.__version__
    assert "machine:" in printed and "command:" in printed
    assert printed.rstrip().endswith("}")  # the table first, the JSON last
    return result


@pytest.mark.slow
def test_sampling_harness_smoke(tmp_path, capsys):
    out = tmp_path / "sampling.json"
    sampling.main(["--sizes", "tiny", "--batch", "1,2", "--device", "cpu", "--window", "4", "--repeats", "1",
                   "--cond", "frame+actions", "--full", "--json", str(out)])
    result = read_report(capsys, out)
    rows = result["results"]
    assert [(r["batch"], r["sampler"].split()[0]) for r in rows] == [(1, "ours"), (1, "reference"), (1, "naive"),
                                                                    (2, "ours"), (2, "reference"), (2, "naive")]
    for row in rows:
        assert row["ms_per_step"] > 0 and row["tokens_per_s"] > 0 and row["video_s"] > 0 and row["first_slice_s"] > 0
    naive = rows[2]  # estimated from its parts, so the first slice cannot take longer than the video
    assert naive["video_s"] >= naive["first_slice_s"]
    assert rows[0]["speedup"] > 0 and "measured end to end" in rows[0]["how"]
    assert rows[0]["vs_reference"] > 0 and rows[0]["vs_reference_cpu"] > 0
    assert any("EXTRAPOLATED" in note for note in result["notes"])


@pytest.mark.slow
def test_sampling_harness_times_the_cuda_graph_step(tmp_path, capsys, monkeypatch):
    # What `--device cuda --compile` runs (the static step, its kept states), compiled here on the CPU.
    out = tmp_path / "sampling.json"
    sampling.main(["--sizes", "tiny", "--batch", "1", "--device", "cpu", "--window", "4", "--repeats", "1",
                   "--cond", "frame+actions", "--decode-mode", "cuda_graph", "--no-naive", "--no-reference", "--full", "--json", str(out)])
    row, = read_report(capsys, out)["results"]
    assert row["ms_per_step"] > 0 and row["first_generation_s"] > 0
    assert isinstance(row["cudagraph_skips"], int)  # reported (on a CPU it counts the graphs, not captured)


@pytest.mark.slow
def test_sampling_harness_on_a_checkpoint(tmp_path, capsys):
    pipeline = tiny_pipeline("all")
    save_pipeline(tmp_path / "tiny", pipeline.vqvae, pipeline.prior)
    out = tmp_path / "checkpoint.json"
    sampling.main(["--checkpoint", str(tmp_path / "tiny"), "--batch", "2", "--device", "cpu", "--json", str(out)])
    (row,) = read_report(capsys, out)["results"]
    assert row["sampler"] == "pipeline" and row["batch"] == 2 and row["video_s"] > 0


@pytest.mark.slow
def test_vqvae_harness_smoke(tmp_path, capsys):
    out = tmp_path / "vqvae.json"
    vqvae.main(["--sizes", "tiny", "--batch", "1,2", "--device", "cpu", "--repeats", "1", "--json", str(out)])
    rows = read_report(capsys, out)["results"]
    assert [(r["batch"], r["direction"]) for r in rows] == [(1, "encode"), (1, "decode"), (2, "encode"),
                                                            (2, "decode")]
    for row in rows:
        assert row["frames_per_s"] == pytest.approx(4 * row["clips_per_s"])


@pytest.mark.slow
def test_vqvae_harness_times_a_trained_codec_at_another_size(tmp_path, capsys):
    tiny_vqvae(seed=1).save_pretrained(tmp_path / "codec")
    out = tmp_path / "codec.json"
    vqvae.main(["--checkpoint", str(tmp_path / "codec"), "--resolution", "32", "--batch", "1", "--device", "cpu",
                "--repeats", "1", "--json", str(out)])
    rows = read_report(capsys, out)["results"]
    assert [(r["size"], r["resolution"], r["direction"]) for r in rows] == [("codec", 32, "encode"),
                                                                            ("codec", 32, "decode")]


@pytest.mark.slow
def test_speculative_harness_reports_acceptance_on_a_world_model(tmp_path, capsys):
    # A model named after a world is driven by that world's example frame and default preset.
    pipeline = tiny_pipeline("all")
    save_pipeline(tmp_path / "pusher-tiny", pipeline.vqvae, pipeline.prior)
    out = tmp_path / "speculative.json"
    speculative.main(["--checkpoint", str(tmp_path / "pusher-tiny"), "--rounds", "1", "--variants", "plain,left:2",
                      "--json", str(out)])
    rows = {row["variant"]: row for row in read_report(capsys, out)["results"]}
    assert set(rows) == {"plain", "left:2"}
    assert rows["plain"]["acceptance"] is None and 0 <= rows["left:2"]["acceptance"] <= 1
    assert 1 <= rows["left:2"]["positions_per_pass"] <= 2 and rows["left:2"]["speedup_cpu"] > 0


def test_weight_reads_count_every_weight_of_a_decode_step(tmp_path, capsys):
    _, prior = build_models(SIZES["tiny"])
    per_token = [m.weight for name, m in prior.named_modules() if isinstance(m, torch.nn.Linear)
                 and not name.startswith("frame")]
    out = tmp_path / "reads.json"
    weight_reads.main(["--sizes", "tiny", "--device", "cpu", "--repeats", "2", "--json", str(out)])
    rows = read_report(capsys, out)["results"]
    assert [(r["size"], r["dtype"]) for r in rows] == [("tiny", "float32"), ("tiny", "bfloat16")]
    assert rows[0]["megabytes"] == pytest.approx(sum(w.numel() for w in per_token) * 4 / 1e6)
    assert rows[1]["megabytes"] == pytest.approx(rows[0]["megabytes"] / 2)
    assert all(r["ms_per_pass"] > 0 for r in rows)


@pytest.mark.slow
def test_training_harness_smoke(tmp_path, capsys):
    out = tmp_path / "training.json"
    training.main(["--sizes", "tiny", "--batch", "2", "--device", "cpu", "--repeats", "1", "--cond", "actions",
                   "--json", str(out)])
    rows = read_report(capsys, out)["results"]
    assert [r["model"] for r in rows] == ["vqvae", "prior"]
    assert rows[1]["tokens_per_s"] == pytest.approx(32 * rows[1]["samples_per_s"])


def test_play_step_cost_harness_on_the_shipped_vizdoom(capsys):
    from benchmarks.play_step_cost import main

    checkpoint = Path(__file__).resolve().parents[1] / "checkpoints" / "vizdoom"
    report = main(["--checkpoint", str(checkpoint), "--steps", "22", "--plays", "3"])
    assert report["steps"] == 22 and report["median_s_steps_1_10"] > 0 and report["median_s_steps_12_22"] > 0
    plays = report["each_play"]
    assert len(plays) == 3 and all(play["late_over_early"] == pytest.approx(play["late_s"] / play["early_s"], rel=1e-2)
                                   for play in plays)
    assert report["late_over_early"] == sorted(play["late_over_early"] for play in plays)[1]  # the middle play
    assert '"late_over_early"' in capsys.readouterr().out


def test_play_vs_simulator_harness_replays_the_keys_of_a_play(tmp_path, capsys):
    pytest.importorskip("vizdoom")
    from benchmarks.play_vs_simulator import key_presses, main
    from videogpt_core.data.worlds.simulators import running_simulators

    keys = key_presses(["left", "right", "up"], play=3, presses=30)
    assert len(keys) == 30 and set(keys) <= {"left", "right", "up"} and len(set(keys)) > 1
    checkpoint = Path(__file__).resolve().parents[1] / "checkpoints" / "vizdoom"
    report = main(["--checkpoint", str(checkpoint), "--plays", "2", "--presses", "3", "--threads", "1",
                   "--sheet", str(tmp_path / "sheet.png")])
    assert report["frames_per_play"] == 3 and len(report["per_play_model_minus_held"]) == 2
    # The first step after the start frame: the simulator moved a little, so holding the start is close to it.
    assert 15 < report["per_frame_held"][0] < 60 and 5 < report["per_frame_model"][0] < 60
    assert 0 < report["detail_ratio"] < 3 and (tmp_path / "sheet.png").stat().st_size > 0
    assert 0 < report["codec_detail_ratio"] < 3 and 5 < report["mean_psnr_codec"] < 60
    assert '"mean_psnr_model"' in capsys.readouterr().out
    assert not running_simulators()  # the engines it started are closed, not left to this process
