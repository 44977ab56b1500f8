"""Tests for videogpt_core.evaluation.metrics: known values and independent reference computations
(FVD: test_fvd.py)."""
import math

import numpy as np
import pytest
import torch

from videogpt_core.evaluation import metrics


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


def test_psnr_from_mse_is_the_formula_on_any_range_and_inf_when_identical():
    got = metrics.psnr_from_mse(torch.tensor([1e-2, 1e-4, 0.0]))
    assert torch.allclose(got[:2], torch.tensor([20.0, 40.0])) and math.isinf(float(got[2]))
    assert float(metrics.psnr_from_mse(np.float64(65.025), data_range=255.0)) == pytest.approx(30.0, abs=1e-9)
    assert metrics.psnr_from_mse(1e-2).dtype == torch.float64  # plain numbers are not rounded to float32


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
