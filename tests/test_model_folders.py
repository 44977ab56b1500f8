"""videogpt_core/models/model_folders.py: one set of rules turns a path into a pipeline folder or a codec folder, and
every loader (the commands, the evaluation, the demo's registries) follows it. The checks below compare each
caller with the rules on every kind of folder, so a caller that walks folders its own way again fails here."""
from __future__ import annotations

import shutil

import pytest
from tiny_models import tiny_prior, tiny_vqvae

from videogpt_core.codecs.reconstruct import load_codec
from videogpt_core.models.checkpoints import load_codec_and_prior, load_models, load_prior, load_vqvae, save_pipeline
from videogpt_core.models.model_folders import (NotAModelFolder, codec_folder, codec_folder_in, find_codec_folders,
                                                find_pipeline_folders, model_name, pipeline_folder, pipeline_folder_in)

# Folder under root -> (its codec folder, its pipeline folder or None), relative to root.
KINDS = {
    "pipe": ("pipe/vqvae", "pipe"),  # a pipeline folder
    "pipe/vqvae": ("pipe/vqvae", None),  # a pipeline's codec given on its own
    "codec-only": ("codec-only/vqvae", None),  # a codec shipped as the pipeline's half (general-codec-*)
    "bare": ("bare", None),  # a VQ-VAE folder
    "vqvae-run": ("vqvae-run/model", None),  # a train-vqvae run folder: model/ is a VQ-VAE folder
    "prior-run": ("prior-run/model/vqvae", "prior-run/model"),  # a train-prior run: model/ is a pipeline
}
NAMES = {"pipe": "pipe", "pipe/vqvae": "pipe", "codec-only": "codec-only", "bare": "bare", "vqvae-run": "vqvae-run",
         "prior-run": "prior-run"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    vqvae = tiny_vqvae()
    prior = tiny_prior(vqvae)
    save_pipeline(root / "pipe", vqvae, prior)
    vqvae.save_pretrained(root / "codec-only" / "vqvae")
    vqvae.save_pretrained(root / "bare")
    vqvae.save_pretrained(root / "vqvae-run" / "model")
    (root / "vqvae-run" / "checkpoints").mkdir()
    save_pipeline(root / "prior-run" / "model", vqvae, prior)
    (root / "notes").mkdir()  # holds no model: skipped when searching
    (root / "notes" / "README.md").write_text("not a model\n")
    return root


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_folder_resolves_by_the_rules(root, kind):
    codec, pipeline = KINDS[kind]
    assert codec_folder(root / kind) == codec_folder_in(root / kind) == root / codec
    assert pipeline_folder_in(root / kind) == (root / pipeline if pipeline else None)
    assert model_name(root / kind) == NAMES[kind]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_loader_takes_a_folder_the_rules_accept(root, kind):
    codec, pipeline = KINDS[kind]
    assert load_codec(root / kind).path == root / codec and load_codec(root / kind).name == NAMES[kind]
    assert load_vqvae(root / kind).config == load_codec(root / kind).vqvae.config
    _, prior = load_codec_and_prior(root / kind)  # the evaluation scores the prior only of a pipeline
    assert (prior is not None) == (pipeline is not None)
    if pipeline:
        assert pipeline_folder(root / kind) == root / pipeline
        load_models(root / kind)
    else:
        with pytest.raises(NotAModelFolder, match="not a pipeline folder"):
            load_models(root / kind)


def test_searching_a_folder_finds_what_each_subfolder_resolves_to(root):
    children = [child for child in sorted(root.iterdir()) if child.is_dir()]
    assert find_codec_folders([root]) == {child.name: codec_folder_in(child) for child in children
                                          if codec_folder_in(child)}
    assert find_pipeline_folders([root]) == {child.name: pipeline_folder_in(child) for child in children
                                             if pipeline_folder_in(child)}
    for kind, (codec, pipeline) in KINDS.items():  # and each folder given on its own
        assert find_codec_folders([root / kind]) == {NAMES[kind]: root / codec}
        assert find_pipeline_folders([root / kind]) == ({NAMES[kind]: root / pipeline} if pipeline else {})


def test_the_demo_serves_what_the_rules_find(root):
    from demo.model_registry import ModelRegistry
    from demo.reconstruct_tab import CodecRegistry

    models = ModelRegistry.from_paths([root], device="cpu")
    assert {name: info.path for name, info in models.infos.items()} == find_pipeline_folders([root])
    codecs = CodecRegistry.from_paths([root], device="cpu")
    assert {name: info.path for name, info in codecs.infos.items()} == find_codec_folders([root])
    assert models.problems == codecs.problems == []


def test_models_of_the_same_name_are_both_kept(root, tmp_path):
    shutil.copytree(root / "pipe", tmp_path / "other" / "pipe")
    found = find_pipeline_folders([root, tmp_path / "other"])
    assert found["pipe"] == root / "pipe" and found["other/pipe"] == tmp_path / "other" / "pipe"
    codecs = find_codec_folders([root / "pipe" / "vqvae", tmp_path / "other" / "pipe" / "vqvae"])
    assert codecs == {"pipe": root / "pipe" / "vqvae", "other/pipe": tmp_path / "other" / "pipe" / "vqvae"}
    assert find_pipeline_folders([root / "pipe", root / "pipe"]) == {"pipe": root / "pipe"}  # the same one once


def test_errors_say_what_was_wrong_and_what_to_give(root, tmp_path):
    missing = tmp_path / "missing"
    for resolve in (codec_folder, pipeline_folder, load_codec, load_vqvae, load_codec_and_prior, load_models, load_prior,
                    lambda path: find_codec_folders([path]), lambda path: find_pipeline_folders([path])):
        with pytest.raises(FileNotFoundError, match="checkpoint not found: no such checkpoint folder .*missing; give"):
            resolve(missing)
    assert find_codec_folders([missing], must_exist=False) == find_pipeline_folders([missing], must_exist=False) == {}
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="file.txt is a file; give a folder"):
        codec_folder(tmp_path / "file.txt")
    # A folder with no model: both a missing file and a wrong argument, and the message lists what would do.
    with pytest.raises(NotAModelFolder, match="notes holds no codec: neither config.json .* nor vqvae/ .* nor model/"):
        codec_folder(root / "notes")
    assert issubclass(NotAModelFolder, ValueError) and issubclass(NotAModelFolder, FileNotFoundError)
    with pytest.raises(NotAModelFolder, match=r"codec-only: not a pipeline folder \(no prior/ inside\)"):
        pipeline_folder(root / "codec-only")
    with pytest.raises(ValueError, match="'prior' model, not a 'vqvae'"):  # found by the rules, refused by kind
        load_codec(root / "pipe" / "prior")
