"""demo/model_card.py: a card generated from the configs, or the model's README.md, with metrics beside it."""
from __future__ import annotations

import json


from demo.model_card import model_card
from demo.model_registry import NO_MODEL_MESSAGE, ModelRegistry


def test_generated_model_card(registry):
    card = model_card(registry, "pusher-tiny")
    assert card.startswith("# pusher-tiny")
    assert "a first frame" in card and "per-frame actions (dx, dy)" in card
    assert "| `n_codes` | 16 |" in card and "| prior |" in card and "M |" in card
    assert "No metrics files" in card


def test_model_card_prefers_readme_and_shows_metrics(folders, tmp_path):
    import shutil

    copy = shutil.copytree(folders["digits-tiny"], tmp_path / "digits-copy")
    (copy / "eval.json").write_text(json.dumps({"psnr": 31.23456, "fvd": 100, "nested": {"skip": 1}}))
    registry = ModelRegistry.from_paths([copy], device="cpu")
    card = model_card(registry, "digits-copy")
    assert "### eval" in card and "| psnr | 31.23 |" in card and "nested" not in card
    (copy / "README.md").write_text("---\nlicense: mit\n---\n# Digits\nTrained for 1 hour.\n")
    assert model_card(registry, "digits-copy") == "# Digits\nTrained for 1 hour.\n"


def test_no_model_card_without_models(tmp_path):
    assert model_card(ModelRegistry.from_paths([tmp_path], device="cpu"), None) == NO_MODEL_MESSAGE


def test_card_pictures_beside_it_are_linked_where_the_app_serves_them(folders, tmp_path):
    import shutil

    from demo_helpers import still_image

    copy = shutil.copytree(folders["pusher-tiny"], tmp_path / "pusher-copy")
    still_image(copy / "ROLLOUTS.png")
    still_image(tmp_path / "outside.png")
    (copy / "README.md").write_text("![a](ROLLOUTS.png) ![b](https://example.org/x.png) ![c](../outside.png) "
                                    "![d](missing.png)\n")
    card = model_card(ModelRegistry.from_paths([copy], device="cpu"), "pusher-copy")
    served = f"![a](gradio_api/file={(copy / 'ROLLOUTS.png').resolve()})"
    # Only files inside the model's folder are served; links elsewhere stay as written.
    assert card == f"{served} ![b](https://example.org/x.png) ![c](../outside.png) ![d](missing.png)\n"
