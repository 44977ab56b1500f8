"""The Generate tab: a model's first frame / class / actions in, a streamed video out; Continue extends it.

`build_generate_tab` lays out the tab's components and wires their events to the plain functions of
generation.py, action_input.py and model_controls.py; the model picker and the Model tab's card live above it.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from gradio.components.dataframe import DataframeData
from gradio.data_classes import GradioRootModel
from pydantic import ValidationError

from demo.action_input import (actions_from_table, actions_table, actions_to_text, apply_actions_text, apply_preset,
                               resized_actions)
from demo.action_presets import action_column_names
from demo.generation import MAX_SAMPLES, continue_generation, generate
from demo.input_checks import whole_number
from demo.model_card import model_card as model_card_markdown
from demo.model_controls import example_path, examples_for_model, model_controls
from demo.model_registry import ModelRegistry
from demo.output_store import OutputStore
from demo.sampling_controls import sampling_sliders, slider_updates
from demo.user_errors import DISMISS_ERRORS_JS

CONTINUE_HELP = ("**Continue** extends one sample of the result: its last frames become the start of a new "
                 "window, and the action table's rows drive the new frames (as many as *Frames*). "
                 "Repeat to steer the world step by step.")


class StartImage(gr.Image):
    """gr.Image whose unreadable uploads (not an image, truncated) get a clear message instead of Gradio's
    generic processing error. A template of gr.Image, so the browser draws it as one."""

    is_template = True

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as error:
            name = getattr(payload, "orig_name", None) or "the uploaded file"
            raise gr.Error(f"{name} is not a readable image ({type(error).__name__}); upload a PNG, JPEG, WebP, "
                           "BMP or GIF image", print_exception=False) from error


class AnyPayload(GradioRootModel):
    root: Any


class ActionTable(gr.Dataframe):
    """gr.Dataframe whose malformed API payloads reach the callback or get a message saying what to send,
    instead of Gradio's "could not preprocess input component" or a schema validation dump: a missing table
    (None) and ragged rows go to the callback (which names the bad row), anything else that is not a table is
    refused here. A template of gr.Dataframe, so the browser draws it as one."""

    is_template = True
    data_model = AnyPayload  # checked in preprocess, where the message can be ours

    def api_info(self) -> dict[str, Any]:
        schema = DataframeData.model_json_schema()  # what clients should send stays documented
        schema["additional_description"] = schema.pop("description", None)
        return schema

    def preprocess(self, payload):
        payload = payload.root if isinstance(payload, AnyPayload) else payload
        if payload is None:
            return None
        try:
            table = DataframeData.model_validate(payload)
        except ValidationError:
            raise gr.Error(f"the action table must be {{'headers': ['dx', 'dy'], 'data': [[dx, dy], ...]}} with one "
                           f"row per frame; got {type(payload).__name__} {str(payload)[:60]!r}",
                           print_exception=False) from None
        width = len(table.headers) if table.headers else len(table.data[0]) if table.data else 0
        if any(len(row) != width for row in table.data):  # pandas would pad with NaN or fail
            return {"data": table.data}  # the callback names the row that is wrong
        return super().preprocess(table)


def _table_update(actions, world: str | None):
    if actions is None:
        return gr.skip()  # hidden for this model; a table value stays so API callers may send any
    return gr.update(value=actions_table(actions, world),
                     headers=action_column_names(actions.shape[1], world))


def build_generate_tab(registry: ModelRegistry, store: OutputStore, gpu, model: gr.Dropdown, summary: gr.Markdown,
                       card: gr.Markdown) -> None:
    """The tab, inside the caller's gr.Tabs; `model` picks the model, `summary` and `card` follow it."""
    names = registry.names
    first = names[0] if names else None
    controls = model_controls(registry, first)
    infos = list(registry.infos.values())
    # Server-side slider bounds must admit every model's values; each model narrows them in the browser.
    most_frames = max([i.max_frames for i in infos], default=controls.max_frames)
    most_codes = max([i.n_codes for i in infos], default=2048)

    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Group(visible=controls.start_image_visible) as image_group:
                    start_image = StartImage(type="filepath", image_mode=None, label=controls.start_image_label,
                                           sources=["upload", "clipboard"], height=220,
                                           elem_id="start-image")
                    gallery = gr.Gallery(value=controls.examples, label="Example frames (click one)",
                                         visible=bool(controls.examples),
                                         columns=8, height=150, allow_preview=False, object_fit="contain",
                                         interactive=False, elem_id="example-frames")
                label = gr.Dropdown(controls.class_names, value=(controls.class_names or [None])[0],
                                    label="Class", visible=bool(controls.class_names), elem_id="label",
                                    allow_custom_value=True)  # checked per model by generation.generate
                with gr.Group(visible=bool(controls.action_dim)) as action_group:
                    preset = gr.Radio(list(controls.presets), value=controls.presets[0],
                                      label="Action preset", elem_id="preset")
                    # Always a table (zeros when hidden), so API callers can send the default.
                    initial_actions = controls.actions if controls.actions is not None else \
                        np.zeros((controls.n_frames, 2), np.float32)
                    actions = ActionTable(
                        value=actions_table(initial_actions, controls.world),
                        headers=action_column_names(controls.action_dim or 2, controls.world),
                        datatype="number",
                        type="pandas", label="Actions: one row per frame (row 1 is the start frame)",
                        max_height=240, show_row_numbers=True, elem_id="actions")
                    with gr.Row(equal_height=True):
                        initial_text = "" if controls.actions is None else \
                            actions_to_text(controls.actions)
                        actions_text = gr.Textbox(
                            value=initial_text,
                            label="Actions as text", placeholder="3,0; 3,0; 0,2  ('3,0 x4' repeats an entry)",
                            scale=4, elem_id="actions-text")
                        use_text = gr.Button("Use text", scale=1, elem_id="use-text")
                n_frames = gr.Slider(1, most_frames, value=controls.n_frames, step=1,
                                     label="Frames (to generate; when continuing: to add)", elem_id="frames")
                n_samples = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="Samples", elem_id="samples")
                with gr.Accordion("Sampling settings", open=False):
                    sampling = sampling_sliders(registry.info(first) if names else None, controls, most_codes)
                with gr.Row(equal_height=True):
                    # No rounding (precision): a fractional seed is refused, as by the Python API.
                    seed = gr.Number(value=0, minimum=0, label="Seed", elem_id="seed")
                    randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id="randomize")
                with gr.Row():
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate",
                                                interactive=bool(names))
                    stop_button = gr.Button("Stop", variant="secondary", elem_id="stop")  # red: running
            with gr.Column(scale=1):
                progress = gr.Markdown("", label="progress", elem_id="progress")
                preview = gr.Image(label="Live preview (frames appear as their latents are sampled)",
                                   format="png", interactive=False, height=260, elem_id="preview")
                video = gr.Video(label="Result (H.264 mp4)", autoplay=True, loop=True, interactive=False,
                                 height=320, elem_id="result-video")
                with gr.Row():
                    gif = gr.File(label="GIF download", interactive=False, elem_id="result-gif")
                    with gr.Column(visible=False, min_width=160) as seed_box:  # shown after a result
                        seed_used = gr.Number(label="Seed used", precision=0, interactive=False,
                                              elem_id="seed-used")
                gr.Markdown(CONTINUE_HELP)
                with gr.Row(equal_height=True):
                    continue_sample = gr.Number(value=1, precision=0, minimum=1, maximum=MAX_SAMPLES,
                                                label="Continue from sample #", elem_id="continue-sample")
                    continue_button = gr.Button("Continue", variant="primary", elem_id="continue")
        session = gr.State(None)


    def on_model_change(name):
        c = model_controls(registry, name)
        info = registry.info(name)
        return (
            c.summary,
            gr.update(visible=c.start_image_visible),
            gr.update(label=c.start_image_label),
            gr.update(value=c.examples, visible=bool(c.examples)),
            gr.update(choices=c.class_names, value=(c.class_names or [None])[0], visible=bool(c.class_names)),
            gr.update(visible=bool(c.action_dim)),
            _table_update(c.actions, c.world),
            "" if c.actions is None else actions_to_text(c.actions),
            gr.update(choices=list(c.presets), value=c.presets[0]),
            gr.update(value=c.n_frames, maximum=c.max_frames),
            model_card_markdown(registry, name),
            None,
            *slider_updates(info, c),
        )

    model.change(on_model_change, model,
                 [summary, image_group, start_image, gallery, label, action_group, actions, actions_text, preset,
                  n_frames, card, session, *sampling], api_visibility="private")

    def on_example_pick(name, evt: gr.SelectData):
        info = registry.info(name) if name else None
        value = evt.value if isinstance(evt.value, dict) else {}
        return example_path(examples_for_model(info), evt.index, value.get("caption"))

    gallery.select(on_example_pick, model, start_image, api_visibility="private")

    def action_dim_of(name) -> int:
        return registry.info(name).action_dim if names else 0

    def world_of(name) -> str | None:
        return registry.info(name).world if names else None

    def on_preset(name, preset_name, frames, seed_value):
        range_ = registry.info(name).prior_config.action_range if names else None
        return apply_preset(preset_name, frames, action_dim_of(name), seed_value, world_of(name), range_)

    preset.input(on_preset, [model, preset, n_frames, seed], [actions, actions_text], api_visibility="private")

    def parse_actions(model, text):
        return apply_actions_text(text, action_dim_of(model), world_of(model))

    # Actions from the text (or typed into the table) are no preset's: the radio no longer names one.
    for event in (use_text.click(parse_actions, [model, actions_text], actions, api_name="parse_actions"),
                  actions_text.submit(parse_actions, [model, actions_text], actions, api_visibility="private")):
        event.success(lambda: None, None, preset, api_visibility="private", queue=False)

    def on_frames(name, table, frames):
        dim = action_dim_of(name)
        if not dim:
            return gr.skip(), gr.skip()
        rows = resized_actions(table, whole_number(frames, "frames", 1, most_frames), dim)
        return actions_table(rows, world_of(name)), actions_to_text(rows)

    n_frames.input(on_frames, [model, actions, n_frames], [actions, actions_text], api_visibility="private",
                   trigger_mode="always_last")

    def on_table_edit(name, table):
        try:
            return actions_to_text(actions_from_table(table, action_dim_of(name)))
        except ValueError:
            return gr.skip()  # half-edited table: the text catches up on the next valid edit

    actions.input(on_table_edit, [model, actions], actions_text, api_visibility="private").success(
        lambda: None, None, preset, api_visibility="private", queue=False)

    def outputs_of(updates):
        """GenerationUpdates -> (preview, progress, video, gif, seed used, session, continue sample)."""
        first_update = True
        for update in updates:
            if update.finished:
                yield (update.preview, update.progress, update.video, update.gif, update.seed, update.session,
                       gr.update(maximum=len(update.session.frames), value=1))
            elif first_update:  # clear the previous result while the new one is sampled
                yield update.preview, update.progress, None, None, gr.skip(), gr.skip(), gr.skip()
            else:
                yield update.preview, update.progress, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            first_update = False

    @gpu
    def run_generate(model, first_frame, label, actions, seed, randomize_seed, n_samples, n_frames, *sampling):
        yield from outputs_of(generate(registry, store, model, first_frame, label, actions, seed, randomize_seed,
                                       n_samples, n_frames, *sampling))

    @gpu
    def run_continue(session, sample, actions, seed, randomize_seed, n_samples, n_frames, *sampling):
        yield from outputs_of(continue_generation(registry, store, session, sample, actions, seed, randomize_seed,
                                                  n_samples, n_frames, *sampling))

    stream_outputs = [preview, progress, video, gif, seed_used, session, continue_sample]
    sampling_inputs = [seed, randomize, n_samples, n_frames, *sampling]  # the sliders last: a new knob appends
    def stop_looks(variant: str):
        return lambda: gr.update(variant=variant)

    # Stop turns red before a run starts and grey once it ended (also on an error or when stopped).
    # Progress (and an error's badge) shows on the progress panel only, not on every output.
    generate_event = generate_button.click(stop_looks("stop"), None, stop_button, queue=False,
                                           api_visibility="private").then(
        run_generate, [model, start_image, label, actions, *sampling_inputs], stream_outputs,
        api_name="generate", show_progress="minimal", show_progress_on=[progress])
    continue_event = continue_button.click(stop_looks("stop"), None, stop_button, queue=False,
                                           api_visibility="private").then(
        run_continue, [session, continue_sample, actions, *sampling_inputs], stream_outputs,
        api_name="continue", show_progress="minimal", show_progress_on=[progress])
    for button in (generate_button, continue_button, use_text):
        button.click(None, js=DISMISS_ERRORS_JS)  # a new try: the last one's errors close
    stop_button.click(lambda: ("Stopped.", gr.update(variant="secondary")), None, [progress, stop_button],
                      cancels=[generate_event, continue_event], api_visibility="private", queue=False)
    for event in (generate_event, continue_event):
        # The browser runs .then listeners after a success only; .failure covers an error.
        event.then(stop_looks("secondary"), None, stop_button, api_visibility="private", queue=False)
        event.failure(stop_looks("secondary"), None, stop_button, api_visibility="private", queue=False)
        # "Seed used" appears with the first result (before it, an empty number box would read 0).
        event.success(lambda: gr.update(visible=True), None, seed_box, api_visibility="private", queue=False)
