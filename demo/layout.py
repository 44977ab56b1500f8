"""The Gradio app: the model picker above four tabs (Generate, Reconstruct, Play, Model), each tab built by its
own module (generate_tab.py, reconstruct_tab.py, play_tab.py), and the queue settings.

`build_demo(registry)` returns a queued gr.Blocks; `launch_options()` holds what Gradio 6 takes at launch().
"""
from __future__ import annotations

import gradio as gr

from demo.examples import EXAMPLES_DIR
from demo.generate_tab import build_generate_tab
from demo.model_card import model_card as model_card_markdown
from demo.model_controls import model_controls
from demo.model_registry import NO_MODEL_MESSAGE, ModelRegistry
from demo.output_store import OutputStore
from demo.play_tab import build_play_tab
from demo.reconstruct_tab import CodecRegistry, build_reconstruct_tab

try:  # On Hugging Face ZeroGPU Spaces, generation must run inside a GPU lease.
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn

CONCURRENCY_LIMIT = 2  # generations running at once; the rest wait in the queue
QUEUE_SIZE = 64
IDLE_POLL_S = 0.05  # how often the idle queue looks for a new job (Gradio's default: every 1 ms)
CACHE_CLEANUP = (1800, 3600)  # every 30 min, delete uploads / result copies older than an hour
MAX_UPLOAD = "200mb"

CSS = """
#preview img, #codes-map img { image-rendering: pixelated; }
#example-frames img { image-rendering: pixelated; }
#model-card th { overflow-wrap: normal; word-break: normal; white-space: nowrap; }
#model-card td { overflow-wrap: break-word; word-break: normal; }
#model-card table { display: block; overflow-x: auto; }
#recon-scores th *, #recon-scores td * { overflow-wrap: normal; word-break: normal; }
"""

INTRO = """# VideoGPT
A VQ-VAE compresses video into a small grid of discrete codes; a GPT samples those codes one by one,
conditioned on a first frame, a class or per-frame actions, and the VQ-VAE decodes them back into frames.
The preview below fills in as each latent time slice is sampled."""


def launch_options() -> dict:
    """Keyword arguments for demo.launch(): Gradio 6 takes css there; errors are shown to the user."""
    return dict(css=CSS, show_error=True, allowed_paths=[str(EXAMPLES_DIR)], max_file_size=MAX_UPLOAD)


def build_demo(registry: ModelRegistry, store: OutputStore | None = None,
               codecs: CodecRegistry | None = None) -> gr.Blocks:
    """The app; the Reconstruct tab offers `codecs` (default: the codecs of the registry's pipelines)."""
    store = store or OutputStore()
    codecs = CodecRegistry.from_models(registry) if codecs is None else codecs
    names = registry.names
    first = names[0] if names else None

    with gr.Blocks(title="VideoGPT", delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(INTRO)
        status_text = registry.status_message()
        gr.Markdown(status_text, visible=bool(status_text), elem_id="status")
        with gr.Row(equal_height=True):
            model = gr.Dropdown(names, value=first, label="Model", elem_id="model", scale=1,
                                interactive=bool(names))
            summary = gr.Markdown(model_controls(registry, first).summary, elem_id="model-summary")
        # The Model tab's card follows the model picker, which the Generate tab wires: made here, shown there.
        card = gr.Markdown(model_card_markdown(registry, first) if first else NO_MODEL_MESSAGE,
                           elem_id="model-card", render=False)

        with gr.Tabs():
            # ------------------------------------------------------------------ Generate
            build_generate_tab(registry, store, gpu, model, summary, card)

            # ------------------------------------------------------------------ Reconstruct
            build_reconstruct_tab(codecs, store, gpu)

            # ------------------------------------------------------------------ Play
            build_play_tab(registry, demo, model)

            # ------------------------------------------------------------------ Model
            with gr.Tab("Model", id="model-card"):
                card.render()

        def model_card(name: str) -> str:
            """The model card (markdown) of a model."""
            return model_card_markdown(registry, name)

        gr.api(model_card, api_name="model_card")

    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    quiet_idle_queue(demo)
    return demo


def quiet_idle_queue(demo: gr.Blocks) -> None:
    """Gradio's queue looks for new jobs every 1 ms and for progress every 10 ms while idle: an idle demo kept
    about a tenth of a core busy. Every IDLE_POLL_S is soon enough to start a generation."""
    queue = getattr(demo, "_queue", None)
    for name in ("sleep_when_free", "progress_update_sleep_when_free"):
        if hasattr(queue, name):
            setattr(queue, name, max(getattr(queue, name), IDLE_POLL_S))
