"""What the README tells a newcomer holds: every optional extra is explained, and the general codec's PSNR stands
beside its no-learning baseline, whose figure is recomputed here."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_optional_extra_is_explained():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    unexplained = [name for name in extras if not re.search(rf"^\| `{re.escape(name)}` \| \S", README, re.M)]
    assert not unexplained, f"README: no row for the extra(s) {unexplained}"


def general_codec_row() -> str:
    return next(line for line in README.splitlines() if line.startswith("| `checkpoints/general-codec-4x4x4` | 4x"))


def test_the_general_codecs_psnr_stands_beside_its_baseline():
    row = general_codec_row()
    assert re.search(r"27\.7 dB mean PSNR over three clips .*block's mean colour: \d+\.\d dB", row), row


@pytest.mark.slow
def test_the_baseline_figure_is_what_the_script_computes():
    pytest.importorskip("gradio")  # the held-out clips ship inside it
    import gradio

    from videogpt_core.codecs.codec_baseline import block_means

    from videogpt_core.cli.reconstruct import read_clip
    from videogpt_core.codecs.reconstruct import _psnr_per_frame, prepare_clip

    videos = Path(gradio.__file__).parent / "media_assets" / "videos"
    scores = []
    for name in ("a.mp4", "b.mp4", "world.mp4"):
        clip = prepare_clip(read_clip(videos / name, 0, None)[0], 64)
        scores.append(np.mean(_psnr_per_frame(clip, block_means(clip, (4, 4, 4)))))
    stated = re.search(r"block's mean colour: (\d+\.\d) dB \((\d+\.\d)-(\d+\.\d) dB\)", general_codec_row())
    assert [float(value) for value in stated.groups()] == [round(float(np.mean(scores)), 1),
                                                           round(float(min(scores)), 1), round(float(max(scores)), 1)]
