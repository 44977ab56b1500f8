"""`videogpt eval`: JSON keys and value ranges for VQ-VAE and pipeline folders on both worlds, FVD with a tiny
TorchScript stand-in for I3D, numbers checked against direct computations, and clear errors."""
import argparse
import json
import math

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from tiny_models import TINY_FRAME_ENCODER, tiny_prior, tiny_vqvae
from videogpt_core.codecs.codec_baseline import block_means
from videogpt_core.data.make_dataset import write_world_dataset
from videogpt_core.data.transforms import from_model_video, to_model_video
from videogpt_core.evaluation.cli import add_commands
from videogpt_core.evaluation.evaluate import evaluate
from videogpt_core.evaluation.inputs import open_eval_dataset
from videogpt_core.evaluation.metrics import nmse, psnr
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.models.checkpoints import save_pipeline
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE

# torch >= 2.10 deprecates TorchScript, the format FVD's I3D files come in.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")

N_TEST = 4
DIGIT_CLASSES = [str(d) for d in range(10)]
TOP_LEVEL_KEYS = {"checkpoint", "checkpoint_kind", "data", "split", "command", "device", "torch_version", "seed",
                  "model", "dataset", "skipped", "timings_s", "wall_time_s"}


class TinyI3D(nn.Module):
    """Stands in for I3D: (N, 3, T, 224, 224) -> (N, 4) features."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, kernel_size=(1, 32, 32), stride=(1, 32, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3, 4))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """World files (6 train + 4 test episodes of 6 frames), a plain HDF5 file and tiny random checkpoints."""
    root = tmp_path_factory.mktemp("eval")
    paths = {world: write_world_dataset(world, root / "data", 6, N_TEST, 6, progress=False)
             for world in ("pusher", "digits")}
    with h5py.File(paths["pusher"], "r") as source, h5py.File(root / "data" / "plain.hdf5", "w") as plain:
        for key in ("test_data", "test_idx"):  # frames only: no world, no actions
            plain[key] = source[key][()]
    paths["plain"] = root / "data" / "plain.hdf5"

    vqvae = tiny_vqvae(0)
    paths["vqvae"] = vqvae.save_pretrained(root / "vqvae_only")
    pusher_prior = tiny_prior(vqvae, "none", 1, action_dim=2, action_embed_dim=6, n_cond_frames=1,
                              **TINY_FRAME_ENCODER)
    paths["pusher_model"] = save_pipeline(root / "pusher_model", vqvae, pusher_prior)
    digits_prior = tiny_prior(vqvae, "none", 2, n_classes=10, class_names=DIGIT_CLASSES)
    paths["digits_model"] = save_pipeline(root / "digits_model", vqvae, digits_prior)
    framed_prior = tiny_prior(vqvae, "none", 3, n_classes=10, class_names=DIGIT_CLASSES, n_cond_frames=1,
                              **TINY_FRAME_ENCODER)
    paths["digits_framed_model"] = save_pipeline(root / "digits_framed_model", vqvae, framed_prior)
    i3d = torch.jit.script(TinyI3D().eval())
    torch.jit.save(i3d, str(root / "tiny_i3d.pt"))
    paths["i3d"] = root / "tiny_i3d.pt"
    paths["root"] = root
    return paths


def _finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _all_clips(vqvae: VQVAE, data, split="test"):
    dataset = open_eval_dataset(data, vqvae.config.sequence_length, vqvae.config.resolution, split)
    items = [dataset[i] for i in range(len(dataset))]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def test_vqvae_folder_scores_reconstruction_only_and_matches_direct_metrics(files):
    result = evaluate(files["vqvae"], files["pusher"], batch_size=3)  # 4 clips: an uneven last batch
    assert TOP_LEVEL_KEYS | {"reconstruction"} <= set(result)
    assert result["checkpoint_kind"] == "vqvae" and result["device"] == "cpu"
    assert set(result["skipped"]) == {"prior", "fvd", "world"} and "prior" not in result
    recon = result["reconstruction"]
    assert recon["clips"] == N_TEST == result["dataset"]["clips_evaluated"]
    assert 0 < recon["codebook_fraction_used"] <= 1 and 1 <= recon["codebook_perplexity"] <= recon["n_codes"]
    assert 1 <= recon["codes_used"] <= 16 and -1 <= recon["ssim"] <= 1 and recon["nmse"] > 0

    vqvae = VQVAE.from_pretrained(files["vqvae"]).eval()
    video = _all_clips(vqvae, files["pusher"])["video"]
    with torch.no_grad():
        reconstruction = vqvae.decode(vqvae.encode(video)).clamp(-0.5, 0.5)
    assert recon["nmse"] == pytest.approx(nmse(reconstruction, video), rel=1e-6)
    assert recon["psnr"] == pytest.approx(psnr(reconstruction, video), rel=1e-6)
    assert recon["data_variance"] == pytest.approx(float(video.double().var(unbiased=False)), rel=1e-6)
    assert recon["dead_codes"] == recon["n_codes"] - recon["codes_used"]
    # Beside the codec: each block of its latent grid kept as its mean colour, scored the same way.
    means = torch.stack([to_model_video(block_means(clip, vqvae.config.downsample))
                         for clip in from_model_video(video)])
    assert recon["baseline_psnr"] == pytest.approx(psnr(means, video), rel=1e-6)
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN / Infinity


def test_pusher_pipeline_scores_prior_and_rollouts(files):
    result = evaluate(files["pusher_model"], files["pusher"], world_samples=3, batch_size=2, seed=5)
    assert {"reconstruction", "prior", "world"} <= set(result)
    assert result["skipped"] == {"fvd": "runs with --what fvd or --i3d DIR (minutes of I3D on a CPU)"}
    assert result["model"]["conditioning"] == {"n_cond_frames": 1, "n_classes": 0, "action_dim": 2}

    prior = result["prior"]
    assert prior["clips"] == N_TEST and prior["tokens"] == N_TEST * 2 * 4 * 4
    assert prior["bits_per_token"] == pytest.approx(prior["nats_per_token"] / math.log(2))
    vqvae = VQVAE.from_pretrained(files["pusher_model"] / "vqvae").eval()
    model = VideoGPT.from_pretrained(files["pusher_model"] / "prior").eval()
    clips = _all_clips(vqvae, files["pusher"])
    with torch.no_grad():
        direct = model.loss(vqvae.encode(clips["video"]), frames=clips["video"][:, :, :1], actions=clips["actions"])
    assert prior["nats_per_token"] == pytest.approx(float(direct["loss"]), rel=1e-5)

    world = result["world"]
    assert world["world"] == "pusher" and world["episodes"] == 3 and world["frames"] == 4
    assert "first frame" in world["conditioning"] and "actions" in world["conditioning"]
    assert 0 <= world["gripper_found"] <= 1 and 0 <= world["object_found"] <= 1 and _finite(world["psnr"])
    for key in ("gripper_error_px", "object_error_px"):  # None when nothing was found in the samples
        assert world[key] is None or 0 <= world[key] < 100
    baseline = world["copy_first_frame_baseline"]
    assert baseline["gripper_found"] == 1.0 and 0 <= baseline["gripper_error_px"] < 20
    assert _finite(baseline["psnr"]) and baseline["psnr"] > world["psnr"]  # a random model does worse
    assert world["episode_seeds"] == [10_000_000, 10_000_001, 10_000_002]

    again = evaluate(files["pusher_model"], files["pusher"], what="world", world_samples=3, batch_size=2, seed=5)
    assert again["world"] == world  # the seed fixes every sample


def test_pusher_world_first_frame_and_long_rollouts(files):
    world = evaluate(files["pusher_model"], files["pusher"], what="world", world_samples=2, batch_size=2, seed=5,
                     world_frames=6)["world"]
    first = world["first_frame"]
    assert _finite(first["rollout_psnr"]) and _finite(first["codec_psnr"]) and "held_turns" not in world
    assert first["gap_db"] == pytest.approx(first["codec_psnr"] - first["rollout_psnr"])
    long = world["long_rollout"]
    assert long["episodes"] == 2 and long["frames"] == 6 and long["window_frames"] == 4
    assert long["scored_frames"] == [5, 6] and _finite(long["psnr"]) and _finite(long["whole_rollout_psnr"])
    with h5py.File(files["pusher"], "r") as file:  # episodes of 6 frames: frames 5-6 against frame 1
        truth = file["test_data"][:12].reshape(2, 6, 64, 64, 3).astype(np.float64)
    mse = ((truth[:, 4:] - truth[:, :1]) ** 2).mean(axis=(1, 2, 3, 4))
    assert long["copy_first_frame_psnr"] == pytest.approx(float(np.mean(10 * np.log10(255.0**2 / mse))))
    assert long["gain_over_copy_db"] == pytest.approx(long["psnr"] - long["copy_first_frame_psnr"])
    # The later half, frames 4-6 of 6, against frame 1 held there.
    mse = ((truth[:, 3:] - truth[:, :1]) ** 2).mean(axis=(1, 2, 3, 4))
    assert long["later_half_frames"] == [4, 6] and _finite(long["later_half_psnr"])
    assert long["later_half_copy_first_frame_psnr"] == pytest.approx(float(np.mean(10 * np.log10(255.0**2 / mse))))
    assert long["later_half_gain_over_copy_db"] == pytest.approx(
        long["later_half_psnr"] - long["later_half_copy_first_frame_psnr"])
    with pytest.raises(ValueError, match="above the prior's window of 4 frames"):
        evaluate(files["pusher_model"], files["pusher"], what="world", world_frames=4)
    with pytest.raises(ValueError, match="--world-frames rolls out test episodes of pusher.*'digits' has none"):
        evaluate(files["digits_model"], files["digits"], what="world", world_frames=8)
    with pytest.warns(UserWarning, match="shorter than a clip"), \
            pytest.raises(ValueError, match="--world-frames 7: .*no video has the 7 frames"):
        evaluate(files["pusher_model"], files["pusher"], what="world", world_samples=2, world_frames=7)


def test_parts_that_do_not_apply_are_skipped_with_reasons(files):
    result = evaluate(files["pusher_model"], files["plain"])
    assert "reconstruction" in result and "prior" not in result and "world" not in result
    assert "no actions" in result["skipped"]["prior"] and "no actions" in result["skipped"]["fvd"]
    assert "not a built-in world" in result["skipped"]["world"]
    with pytest.raises(ValueError, match="cannot evaluate 'prior'.*no actions"):
        evaluate(files["pusher_model"], files["plain"], what="prior")


def test_digits_pipeline_classifier_and_class_conditional_samples(files, tmp_path):
    result = evaluate(files["digits_model"], files["digits"], what="world,prior", world_samples=1,
                      digit_classifier_steps=3, save_digit_classifier=tmp_path / "classifier")
    assert "reconstruction" not in result and result["skipped"]["recon"] == "not asked for (--what)"
    assert _finite(result["prior"]["bits_per_token"])
    world = result["world"]
    assert world["world"] == "digits" and world["conditioning"] == "label"
    assert world["real_test_clips"] == N_TEST and 0 <= world["real_test_accuracy"] <= 1
    assert world["samples_per_class"] == 1 and set(world["sample_accuracy_per_class"]) == set(DIGIT_CLASSES)
    assert all(value in (0.0, 1.0) for value in world["sample_accuracy_per_class"].values())
    assert world["sample_accuracy"] == pytest.approx(np.mean(list(world["sample_accuracy_per_class"].values())))
    assert (tmp_path / "classifier" / "model.safetensors").is_file()

    loaded = evaluate(files["digits_model"], files["digits"], what="world", world_samples=1,
                      digit_classifier=tmp_path / "classifier")
    assert loaded["world"]["classifier"] == str(tmp_path / "classifier")
    assert loaded["world"]["real_test_accuracy"] == world["real_test_accuracy"]
    assert loaded["world"]["sample_accuracy_per_class"] == world["sample_accuracy_per_class"]


def test_guidance_scale_reaches_the_sampler_and_the_report(files, monkeypatch):
    import videogpt_core.evaluation.digits_world as digits_world

    seen = []
    real_sample_clips = digits_world.sample_clips

    def spy(pipeline, batch, options, *args, **kwargs):
        seen.append(options.cfg_scale)
        return real_sample_clips(pipeline, batch, options, *args, **kwargs)

    monkeypatch.setattr(digits_world, "sample_clips", spy)
    result = evaluate(files["digits_model"], files["digits"], what="world", world_samples=1,
                      options=SamplingOptions(cfg_scale=2.0), digit_classifier_steps=2)
    assert result["sampling"]["cfg_scale"] == 2.0 and seen and set(seen) == {2.0}
    with pytest.raises(ValueError, match="cfg_scale"):
        evaluate(files["digits_model"], files["digits"], what="world", options=SamplingOptions(cfg_scale=-1.0))


def test_frame_conditional_digits_model_gets_a_real_first_frame(files):
    result = evaluate(files["digits_framed_model"], files["digits"], what="world", world_samples=1,
                      digit_classifier_steps=2)
    world = result["world"]
    assert world["conditioning"].startswith("label + the first frame of a real test clip")
    # Only classes that occur among the 4 test clips can lend a first frame.
    with h5py.File(files["digits"], "r") as file:
        test_classes = {str(label) for label in file["test_labels"][()]}
    assert set(world["sample_accuracy_per_class"]) == test_classes
    assert len(world["classes_without_test_clip"]) == 10 - len(test_classes)


def test_fvd_with_a_local_torchscript_model(files):
    result = evaluate(files["pusher_model"], files["pusher"], what="fvd", i3d=files["i3d"], fvd_samples=3,
                      batch_size=2)
    fvd = result["fvd"]
    assert fvd["n_real"] == fvd["n_generated"] == fvd["clips"] == 3 and fvd["feature_dim"] == 4
    assert _finite(fvd["fvd"]) and fvd["fvd"] > 0 and fvd["i3d"] == str(files["i3d"].resolve())
    assert _finite(fvd["r_fvd"]) and fvd["r_fvd"] > 0 and "biased" in fvd["warning"]
    assert "first frame + actions" in fvd["fvd_of"]
    assert set(result["skipped"]) == {"recon", "prior", "world"}
    capped = evaluate(files["pusher_model"], files["pusher"], what="fvd", i3d=files["i3d"], fvd_samples=50)
    assert capped["fvd"]["n_real"] == N_TEST  # no more real clips than the split has


def test_fvd_of_a_vqvae_folder_is_the_r_fvd_of_its_reconstructions(files):
    result = evaluate(files["vqvae"], files["pusher"], what="fvd", i3d=files["i3d"], fvd_samples=4, batch_size=3)
    fvd = result["fvd"]
    assert fvd["clips"] == 4 and _finite(fvd["r_fvd"]) and fvd["r_fvd"] > 0
    assert "fvd" not in fvd and "reconstructions of the 4 clips" in fvd["r_fvd_of"]


def test_command_line_prints_and_writes_the_same_json(files, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="videogpt")
    add_commands(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--help"])
    help_text = capsys.readouterr().out
    assert "--i3d" in help_text and "NMSE" in help_text and "--world-samples" in help_text
    assert "--cfg-scale" in help_text and "--world-frames" in help_text
    out = tmp_path / "nested" / "result.json"
    args = parser.parse_args(["eval", "--checkpoint", str(files["vqvae"]), "--data", str(files["digits"]),
                              "--max-clips", "2", "--out", str(out), "--quiet"])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["reconstruction"]["clips"] == 2
    assert printed["command"] == (f"videogpt eval --checkpoint {files['vqvae']} --data {files['digits']} "
                                  f"--max-clips 2 --out {out} --quiet")


def test_clear_errors(files, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        evaluate(tmp_path / "missing", files["pusher"])
    with pytest.raises(FileNotFoundError, match="data set not found"):
        evaluate(files["vqvae"], tmp_path / "missing.hdf5")
    with pytest.raises(FileNotFoundError, match="I3D model not found"):
        evaluate(files["pusher_model"], files["pusher"], i3d=tmp_path / "i3d.pt")
    with pytest.raises(ValueError, match="prior alone"):
        evaluate(files["pusher_model"] / "prior", files["pusher"])
    with pytest.raises(FileNotFoundError, match="neither config.json"):
        evaluate(tmp_path, files["pusher"])
    monkeypatch.setenv("VIDEOGPT_I3D", str(tmp_path / "no_i3d_here"))  # no default I3D folder
    with pytest.raises(FileNotFoundError, match="convert-i3d .*no_i3d_here.*pip install"):
        evaluate(files["pusher_model"], files["pusher"], what="fvd")
    with pytest.raises(ValueError, match="cannot evaluate 'world'.*VQ-VAE folder"):
        evaluate(files["vqvae"], files["pusher"], what="world")
    with pytest.raises(ValueError, match="--what takes"):
        evaluate(files["vqvae"], files["pusher"], what="recon,speed")
    with pytest.raises(ValueError, match="split must be"):
        evaluate(files["vqvae"], files["pusher"], split="validation")
    not_torchscript = tmp_path / "weights.pt"
    not_torchscript.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        evaluate(files["pusher_model"], files["pusher"], what="fvd", i3d=not_torchscript)
