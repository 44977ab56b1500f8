"""The Model tab: a model's README.md when it ships one, else a card generated from its configs, the parameter
counts in its weights' headers and any metrics JSON beside it."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from urllib.parse import quote, unquote

import gradio as gr

from demo.model_registry import NO_MODEL_MESSAGE, ModelRegistry
from demo.user_errors import user_errors
from videogpt_core.models.config import config_to_dict


def _parameter_count(weights: Path) -> int | None:
    """Parameters (and buffers) in a safetensors file, from its header: nothing is loaded."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            return sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    except Exception:  # a broken file: the card says so instead of failing
        return None


def _config_table(config) -> str:
    rows = [f"| `{key}` | {value} |" for key, value in config_to_dict(config).items()]
    return "\n".join(["| field | value |", "|---|---|", *rows])


def _metrics_tables(folder: Path) -> list[str]:
    """Any JSON files beside the models (training / evaluation summaries) as tables."""
    parts = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict):
            flat = {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool))}
            if flat:
                rows = [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in flat.items()]
                parts.append(f"### {path.stem}\n\n| metric | value |\n|---|---|\n" + "\n".join(rows))
    return parts


def _strip_front_matter(text: str) -> str:
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            return text[end + 4:].lstrip("\n")
    return text


IMAGE_LINK = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)(\))")  # ![alt](target)
NOT_A_FILE = re.compile(r"^([a-z][a-z0-9+.-]*:|/|#)", re.IGNORECASE)  # a URL, an absolute or in-page link
_served: set[Path] = set()


def _served_images(card: str, folder: Path) -> str:
    """A card's pictures beside it (`![rollouts](ROLLOUTS.png)`) linked where the app serves them: the browser
    would resolve the bare name against the app's own address, where nothing is (404)."""
    folder = folder.resolve()

    def link(match: re.Match) -> str:
        target = match.group(2)
        path = (folder / unquote(target)).resolve()
        if NOT_A_FILE.match(target) or not path.is_file() or not path.is_relative_to(folder):
            return match.group(0)  # anything else stays as written
        if path not in _served:
            gr.set_static_paths([path])  # this one file, not the folder (its weights are not for download)
            _served.add(path)
        # Relative to the page, so a demo mounted under a sub-path finds it too.
        return f"{match.group(1)}gradio_api/file={quote(str(path))}{match.group(3)}"

    return IMAGE_LINK.sub(link, card)


@user_errors
def model_card(registry: ModelRegistry, name: str | None) -> str:
    """The model's README.md if it ships one, else a card generated from its configs and files."""
    if not registry.names:
        return NO_MODEL_MESSAGE
    info = registry.info(name)
    readme = info.path / "README.md"
    if readme.is_file():
        return _served_images(_strip_front_matter(readme.read_text(errors="replace")), info.path)
    counts = {part: _parameter_count(info.path / part / "model.safetensors") for part in ("vqvae", "prior")}
    count_rows = [f"| {part} | {count / 1e6:.2f} M |" if count is not None else f"| {part} | unreadable |"
                  for part, count in counts.items()]
    t, h, w = info.latent_shape
    lines = [
        f"# {info.name}",
        "",
        f"Conditions on {info.conditioning()}. Generates {info.sequence_length} frames of "
        f"{info.resolution}×{info.resolution} per window (longer videos slide the window), as a "
        f"{t}×{h}×{w} grid of codes from a codebook of {info.n_codes}.",
        "",
        f"Folder: `{info.path}` (no README.md there, so this card is generated from the configs).",
        "",
        "## Parameters",
        "",
        "| part | parameters |",
        "|---|---|",
        *count_rows,
        "",
        "## VQ-VAE configuration",
        "",
        _config_table(info.vqvae_config),
        "",
        "## Prior configuration",
        "",
        _config_table(info.prior_config),
    ]
    metrics = _metrics_tables(info.path)
    lines += ["", "## Training and evaluation", ""]
    lines += metrics if metrics else ["No metrics files (`*.json`) were found beside the model."]
    return "\n".join(lines)
