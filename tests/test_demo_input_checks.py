"""demo/input_checks.py: UI values turned into the sampler's settings and the start image into RGB frames."""
from __future__ import annotations

import numpy as np
from demo_helpers import still_image
from PIL import Image

from demo.input_checks import load_start_image


def test_start_image_any_format(tmp_path):
    rgba = load_start_image(str(still_image(tmp_path / "a.png", mode="RGBA")))
    gray = load_start_image(str(still_image(tmp_path / "g.png", mode="L")))
    sixteen = tmp_path / "i16.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(sixteen)
    assert rgba.shape == (30, 40, 3) and rgba.dtype == np.uint8
    assert gray.shape == (30, 40, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    assert load_start_image(str(sixteen)).min() == 255
    assert load_start_image(None) is None
