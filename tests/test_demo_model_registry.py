"""demo/model_registry.py: the pipeline folders a demo serves, their configs read up front, weights loaded once,
and folders that cannot be read reported instead of served."""
from __future__ import annotations

import gradio as gr
import pytest
import torch


from demo.model_registry import ModelRegistry
from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.inference.sampling_options import SamplingOptions


def test_registry_finds_every_pipeline_folder(folders, registry):
    assert registry.names == sorted(folders)
    assert registry.problems == []
    info = registry.info("pusher-tiny")
    assert info.needs_frames and info.action_dim == 2 and not info.class_names
    assert registry.info("digits-tiny").class_names == ["zero", "one", "two"]
    assert registry.info("uncond-tiny").conditioning() == "nothing (unconditional)"


def test_empty_registry_says_where_models_go(tmp_path):
    registry = ModelRegistry.from_paths([tmp_path], device="cpu")
    assert registry.names == []
    assert "checkpoints/" in registry.status_message() and "--checkpoint" in registry.status_message()
    with pytest.raises(gr.Error, match="No model found"):
        registry.info("anything")


def test_unreadable_folder_is_reported_not_fatal(folders, tmp_path):
    broken = tmp_path / "broken"
    (broken / "vqvae").mkdir(parents=True)
    (broken / "prior").mkdir()
    (broken / "vqvae" / "config.json").write_text("{not json")
    registry = ModelRegistry({"broken": broken, "digits-tiny": folders["digits-tiny"]}, device="cpu")
    assert registry.names == ["digits-tiny"]
    assert "broken" in registry.status_message() and "not valid JSON" in registry.status_message()


def test_models_are_loaded_once(registry):
    assert registry.pipeline("uncond-tiny") is registry.pipeline("uncond-tiny")


@pytest.fixture
def no_compiler(monkeypatch):
    """Compiling fails, as it does on a machine without a C++ compiler."""
    def fail(pipeline, step, batches):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(VideoGPTPipeline, "_warm", fail)


def test_a_model_that_fails_to_compile_is_served_uncompiled(folders, no_compiler, capsys):
    registry = ModelRegistry({"digits-tiny": folders["digits-tiny"]}, device="cpu", compile="on-load")
    pipeline = registry.pipeline("digits-tiny")
    assert not pipeline.compiled
    assert "could not compile model digits-tiny" in capsys.readouterr().err
    assert pipeline.generate(label="one", seed=0).frames.shape[0] == 1


@pytest.mark.slow
def test_background_compilation_serves_at_once_then_swaps_in_the_compiled_step(folders):
    registry = ModelRegistry({"digits-tiny": folders["digits-tiny"]}, device="cpu", compile="background")
    pipeline = registry.pipeline("digits-tiny")  # returns without waiting for the compiler
    assert registry.compiler.state["digits-tiny"] in ("waiting", "compiling", "compiled")
    expected = ModelRegistry({"digits-tiny": folders["digits-tiny"]}, device="cpu").pipeline("digits-tiny")
    assert registry.compiler.wait(timeout=600)
    assert registry.compiler.state["digits-tiny"] == "compiled" and pipeline.compiled
    assert torch.equal(pipeline.generate(label="one", seed=2, options=SamplingOptions(top_k=4)).codes,
                       expected.generate(label="one", seed=2, options=SamplingOptions(top_k=4)).codes)


def test_a_failed_background_compilation_leaves_the_model_serving(folders, no_compiler, capsys):
    registry = ModelRegistry({"digits-tiny": folders["digits-tiny"]}, device="cpu", compile="background")
    pipeline = registry.pipeline("digits-tiny")
    assert registry.compiler.wait(timeout=60)
    assert registry.compiler.state["digits-tiny"] == "uncompiled: no C++ compiler" and not pipeline.compiled
    assert "could not compile model digits-tiny" in capsys.readouterr().err
    assert pipeline.generate(label="one", seed=0).frames.shape[0] == 1


def test_an_unknown_compile_setting_is_refused(folders):
    with pytest.raises(ValueError, match="compile must be one of off, on-load, background"):
        ModelRegistry({"digits-tiny": folders["digits-tiny"]}, compile="yes")
