"""Tests for videogpt_core.metrics: known values, independent reference computations, FVD path."""
import math

import numpy as np
import pytest
import torch

from videogpt_core import metrics


def _videos(seed: int, shape=(2, 3, 4, 16, 16)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) - 0.5


# ---------------------------------------------------------------- PSNR, SSIM, NMSE


def test_psnr_known_value_and_per_frame():
    a = torch.zeros(2, 3, 4, 8, 8)
    b = a.clone()
    b[:, :, 1] += 0.1  # frame 1: MSE 0.01 -> 20 dB
    b[:, :, 2] += 0.01  # frame 2: MSE 1e-4 -> 40 dB
    b[:, :, 0] += 1.0  # frame 0: MSE 1 -> 0 dB
    b[:, :, 3] += 0.001  # frame 3: MSE 1e-6 -> 60 dB
    per_frame = metrics.psnr_per_frame(a, b)
    assert per_frame.shape == (4,)
    assert torch.allclose(per_frame, torch.tensor([0.0, 20.0, 40.0, 60.0], dtype=torch.float64), atol=1e-6)
    assert metrics.psnr(a, b) == pytest.approx(30.0, abs=1e-6)
    # data_range scales the peak: range 2 adds 20 log10(2) dB.
    assert metrics.psnr(a, b, data_range=2.0) == pytest.approx(30.0 + 20 * math.log10(2), abs=1e-6)


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 9))


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Direct per-window SSIM of one [0, 1] image pair with an 11x11 sigma-1.5 Gaussian window."""
    coords = np.arange(11) - 5.0
    g1 = np.exp(-(coords**2) / (2 * 1.5**2))
    w = np.outer(g1, g1)
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx = (w * (px - mx) ** 2).sum()
            vy = (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_direct_window_computation():
    a = _videos(0, (1, 1, 1, 14, 15))
    b = (a + 0.1 * _videos(1, (1, 1, 1, 14, 15))).clamp(-0.5, 0.5)
    expected = _ssim_reference(a[0, 0, 0].double().numpy() + 0.5, b[0, 0, 0].double().numpy() + 0.5)
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-10)
    # The same frames given in [0, 1] with value_range=(0, 1) give the same SSIM.
    assert metrics.ssim(a.double() + 0.5, b.double() + 0.5, value_range=(0, 1)) == pytest.approx(expected, abs=1e-10)


def test_ssim_identity_and_ordering():
    a = _videos(2)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    slightly = (a + 0.02 * _videos(3)).clamp(-0.5, 0.5)
    heavily = (a + 0.5 * _videos(4)).clamp(-0.5, 0.5)
    assert 1.0 > metrics.ssim(a, slightly) > metrics.ssim(a, heavily)


def test_ssim_rejects_small_frames():
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 8))


def test_nmse():
    target = _videos(5)
    assert metrics.nmse(target, target) == 0.0
    recon = target + 0.1
    expected = 0.01 / float(target.double().var(unbiased=False))
    assert metrics.nmse(recon, target) == pytest.approx(expected, rel=1e-6)
    assert metrics.nmse(recon, target, data_variance=0.06) == pytest.approx(0.01 / 0.06, rel=1e-6)
    # Predicting the mean everywhere gives NMSE 1: the normalization's point.
    assert metrics.nmse(torch.full_like(target, float(target.double().mean())), target) == pytest.approx(1.0, rel=1e-5)


def test_bits_per_token_and_codebook_usage():
    assert metrics.bits_per_token(math.log(2) * 3) == pytest.approx(3.0)
    assert torch.allclose(metrics.bits_per_token(torch.tensor([math.log(2)])), torch.tensor([1.0]))
    uniform = metrics.codebook_usage(torch.arange(8).repeat(5), n_codes=16)
    assert uniform["fraction_used"] == 0.5
    assert uniform["perplexity"] == pytest.approx(8.0)
    single = metrics.codebook_usage(torch.full((2, 3, 4), 7), n_codes=16)
    assert single == {"fraction_used": 1 / 16, "perplexity": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="must lie in"):
        metrics.codebook_usage(torch.tensor([0, 16]), n_codes=16)


# ---------------------------------------------------------------- Frechet distance


def test_frechet_distance_one_dimensional():
    # Between N(m1, s1^2) and N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2.
    assert metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    same = metrics.frechet_distance(np.array([0.5]), np.array([2.0]), np.array([0.5]), np.array([2.0]))
    assert same == pytest.approx(0.0, abs=1e-12)


def test_frechet_distance_diagonal_and_rotated():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.1, 3, size=5), rng.uniform(0.1, 3, size=5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    got = metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-10)
    # The distance is invariant to one rotation applied to both Gaussians.
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    rotated = metrics.frechet_distance(q @ mu1, q @ np.diag(var1) @ q.T, q @ mu2, q @ np.diag(var2) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_non_commuting_matches_eigvals_of_product():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    # Independent route: S1 S2 is similar to a PSD matrix, so its eigenvalues are real and >= 0.
    trace_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(0)).sum()
    expected = np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    zero = np.zeros(6)
    assert metrics.frechet_distance(zero, s1, zero, s2) == pytest.approx(expected, rel=1e-9)
    assert metrics.frechet_distance(torch.zeros(6), torch.from_numpy(s1), zero, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="covariances"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_fvd_of_feature_sets():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(400, 4))
    assert metrics.fvd(real, real) == pytest.approx(0.0, abs=1e-8)
    shifted = real + np.array([1.0, 0.0, 0.0, 0.0])
    assert metrics.fvd(real, shifted) == pytest.approx(1.0, rel=1e-8)
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.fvd(real[:1], real)


# ---------------------------------------------------------------- I3D / FVD path


class _TinyDetector(torch.nn.Module):
    """Stands in for I3D: average-pools the clip and projects it to 6 features."""

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
    path = tmp_path / "i3d.pt"
    torch.jit.save(torch.jit.script(_TinyDetector()), str(path))
    return path


def test_load_i3d_errors(tmp_path, detector_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        metrics.load_i3d(tmp_path / "missing.pt")
    not_script = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, not_script)
    with pytest.raises(ValueError, match="not a TorchScript file"):
        metrics.load_i3d(not_script)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="garbage.pt"):
        metrics.load_i3d(garbage)
    assert isinstance(metrics.load_i3d(detector_path), torch.jit.ScriptModule)


def test_i3d_features_preprocessing_and_fvd(detector_path):
    model = metrics.load_i3d(detector_path)
    rng = np.random.default_rng(3)
    uint8 = rng.integers(0, 256, size=(5, 4, 32, 40, 3), dtype=np.uint8)
    uint8[0, 0, 0, 0] = 0
    uint8[0, 0, 0, 1] = 255
    feats = metrics.i3d_features(model, uint8, batch_size=2)
    assert feats.shape == (5, 6) and feats.dtype == torch.float64
    low, high, h, w = model.last_input_stats.tolist()
    assert (h, w) == (224, 224)
    assert -1.0 <= low < -0.9 and 0.9 < high <= 1.0
    # The float convention (N, 3, T, H, W) in [-0.5, 0.5] gives the same features.
    as_float = torch.from_numpy(uint8).permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5
    assert torch.allclose(metrics.i3d_features(model, as_float, batch_size=5), feats, atol=1e-5)
    # Batching does not change the result.
    assert torch.allclose(metrics.i3d_features(model, uint8, batch_size=5), feats, atol=1e-6)
    assert metrics.fvd(feats, feats) == pytest.approx(0.0, abs=1e-6)
    other = metrics.i3d_features(model, 255 - uint8)
    assert metrics.fvd(feats, other) > 0.0


def test_i3d_features_rejects_bad_layout(detector_path):
    model = metrics.load_i3d(detector_path)
    with pytest.raises(ValueError, match=r"\(N, T, H, W, 3\)"):
        metrics.i3d_features(model, np.zeros((2, 3, 4, 16, 16), dtype=np.uint8))
