"""`videogpt export-space`: the folder holds the app, the library and the shipped models without trainer state,
no pickle, and an LFS rule for every binary file and every file over 10 MB (checked with git itself); a folder
it cannot make a Space of is refused before anything is written. The slow test serves the exported folder."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import videogpt_core.cli.main as cli
from videogpt_core.cli.space_export import LFS_LIMIT, export_space, front_matter, is_binary, is_pickle

REPO = Path(__file__).resolve().parents[1]
FRONT = "---\ntitle: T\nsdk: gradio\napp_file: app.py\n---\n"


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "out"
    export_space(out, REPO)
    return out


def files_in(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")
            if path.is_file() and ".git" not in path.relative_to(folder).parts}


def lfs_filter(folder: Path, files: list[str]) -> dict[str, str]:
    """git's own reading of the folder's .gitattributes: file -> its `filter` attribute."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    listed = subprocess.run(["git", "check-attr", "--stdin", "filter"], cwd=folder, input="\n".join(files),
                            capture_output=True, text=True, check=True).stdout
    return dict(line.rsplit(": filter: ", 1) for line in listed.splitlines())


def test_the_space_holds_the_app_the_library_and_the_shipped_models(space):
    shipped = files_in(space)
    for name in ("app.py", "requirements.txt"):
        assert (space / name).read_bytes() == (REPO / name).read_bytes()
    code = {f"{folder}/{p}" for folder in ("demo", "videogpt_core") for p in files_in(REPO / folder)
            if p.endswith(".py") and "__pycache__" not in p}
    examples = {f"demo/examples/{p}" for p in files_in(REPO / "demo" / "examples")}
    assert code <= shipped and examples <= shipped
    models = [folder for folder in (REPO / "checkpoints").iterdir() if (folder / "vqvae").is_dir()]
    assert len(models) >= 5
    for folder in models:
        kept = {f"checkpoints/{folder.name}/{p}" for p in files_in(folder) if not p.startswith("training/checkpoint/")}
        assert kept <= shipped, folder.name  # weights, configs, card, pictures, learning curves
        assert f"checkpoints/{folder.name}/vqvae/model.safetensors" in kept
    assert not [p for p in shipped if "/training/checkpoint/" in p]  # trainer state only resumes training
    readme = (space / "README.md").read_text()
    assert front_matter(readme) == front_matter((REPO / "README.md").read_text())
    sdk = next(line.split(":")[1].strip() for line in front_matter(readme).splitlines() if line.startswith("sdk_ver"))
    assert f"gradio=={sdk}" in (space / "requirements.txt").read_text()  # the Space runs the version we pin
    assert "app_file: app.py" in readme and all(f"`{folder.name}`" in readme for folder in models)


def test_every_binary_file_and_every_file_over_10_mb_is_an_lfs_file(space):
    files = sorted(files_in(space))
    large = [p for p in files if (space / p).stat().st_size > LFS_LIMIT]
    binary = [p for p in files if is_binary(space / p)]
    assert large and any(p.endswith(".png") for p in binary)  # the digits codec of 12.2 MB, the pictures
    filters = lfs_filter(space, files)
    assert [p for p in {*large, *binary} if filters[p] != "lfs"] == []
    assert filters["app.py"] == "unspecified"  # text stays text


def test_the_space_holds_no_pickle(space):
    for path in space.rglob("*"):
        if path.is_file():
            assert path.suffix not in (".pt", ".pth", ".pkl", ".pickle", ".ckpt") and not is_pickle(path), path


def test_pickles_are_recognised_and_safetensors_are_not(tmp_path):
    (tmp_path / "a.bin").write_bytes(pickle.dumps({"step": 1}, protocol=4))
    # A safetensors file whose header is 640 bytes long starts with the bytes of a protocol-2 pickle.
    (tmp_path / "b.safetensors").write_bytes((640).to_bytes(8, "little") + b"{" + b" " * 639)
    assert is_pickle(tmp_path / "a.bin") and not is_pickle(tmp_path / "b.safetensors")
    assert is_pickle(REPO / "checkpoints" / "vizdoom" / "training" / "checkpoint" / "rng_state_0.pt")


def small_repo(root: Path) -> Path:
    """A repository in miniature: one codec with trainer state, an 11 MB text file, a binary of no known type."""
    for name, text in {"app.py": "print('app')\n", "requirements.txt": "gradio\n", "README.md": FRONT + "# T\n",
                       "demo/__init__.py": "", "videogpt_core/__init__.py": "",
                       "checkpoints/m/vqvae/config.json": "{}", "checkpoints/m/README.md": "# m\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "checkpoints/m/vqvae/model.safetensors").write_bytes(b"\x08" + b"\0" * 7 + b"{}      ")
    (root / "checkpoints/m/training/checkpoint").mkdir(parents=True)
    (root / "checkpoints/m/training/checkpoint/optimizer.pt").write_bytes(pickle.dumps([1.0], protocol=2))
    (root / "checkpoints/m/training/curve one.jsonl").write_text('{"loss": 1.0}\n' * (LFS_LIMIT // 14 + 1))
    (root / "demo/weights.data").write_bytes(b"\0\1\2" * 10)
    (root / "demo/__pycache__").mkdir()
    (root / "demo/__pycache__/x.pyc").write_bytes(b"\0")
    return root


def test_files_no_pattern_covers_get_rules_of_their_own(tmp_path):
    root = small_repo(tmp_path / "repo")
    export = export_space(tmp_path / "out", root)
    out = tmp_path / "out"
    assert files_in(out) == {"app.py", "requirements.txt", "README.md", ".gitattributes", "demo/__init__.py",
                             "demo/weights.data", "videogpt_core/__init__.py", "checkpoints/m/README.md",
                             "checkpoints/m/vqvae/config.json", "checkpoints/m/vqvae/model.safetensors",
                             "checkpoints/m/training/curve one.jsonl"}
    assert export.models == ["m"] and "`m`" in (out / "README.md").read_text()
    needing = ["checkpoints/m/training/curve one.jsonl", "checkpoints/m/vqvae/model.safetensors", "demo/weights.data"]
    assert sorted(export.lfs_files) == needing
    filters = lfs_filter(out, sorted(files_in(out)))
    assert {p for p, value in filters.items() if value == "lfs"} == set(needing)


def test_what_cannot_become_a_space_is_refused_before_writing(tmp_path):
    root = small_repo(tmp_path / "repo")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        export_space(tmp_path / "used", root)
    clone = tmp_path / "clone"  # a fresh clone of a new Space will do
    (clone / ".git").mkdir(parents=True)
    (clone / "README.md").write_text(FRONT)
    assert (export_space(clone, root).folder / "app.py").is_file()
    with pytest.raises(ValueError, match="inside the repository"):
        export_space(root / "space", root)
    (root / "demo" / "cache.pkl").write_bytes(pickle.dumps({}, protocol=5))
    with pytest.raises(ValueError, match=r"demo/cache\.pkl: pickled"):
        export_space(tmp_path / "fresh", root)
    assert not (tmp_path / "fresh").exists()
    (root / "app.py").unlink()
    with pytest.raises(FileNotFoundError, match="--source"):
        export_space(tmp_path / "fresh", root)
    (root / "app.py").write_text("")
    (root / "README.md").write_text("# no front matter\n")
    (root / "demo" / "cache.pkl").unlink()
    with pytest.raises(ValueError, match="front matter"):
        export_space(tmp_path / "fresh", root)


def test_the_command(tmp_path, capsys):
    root = small_repo(tmp_path / "repo")
    assert cli.main(["export-space", str(tmp_path / "out"), "--source", str(root)]) == 0
    printed = capsys.readouterr().out
    assert "1 model(s) (m) without trainer state" in printed and "3 files under LFS rules" in printed
    assert cli.main(["export-space", str(tmp_path / "out"), "--source", str(root)]) == 2  # not empty any more


def test_a_plain_install_exports_the_clone_it_runs_in(tmp_path, monkeypatch):
    import videogpt_core.cli.space_export as space_export

    root = small_repo(tmp_path / "repo")
    monkeypatch.setattr(space_export, "REPO_ROOT", tmp_path / "site-packages")  # no app.py beside the package
    monkeypatch.chdir(root)
    assert cli.main(["export-space", str(tmp_path / "out")]) == 0 and (tmp_path / "out" / "app.py").is_file()
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export-space", str(tmp_path / "again")]) == 2  # not a clone: says to give --source


# ---- the exported folder serves ---------------------------------------------------------------------------


def generation_inputs(space: Path, name: str) -> tuple:
    """/generate's inputs for a shipped model: its world's first example frame, its class or 4 still actions."""
    from gradio_client import handle_file

    config = json.loads((space / "checkpoints" / name / "prior" / "config.json").read_text())
    frames = sorted((space / "demo" / "examples").glob(f"{name}-*.png"))
    first = handle_file(str(frames[0])) if config.get("n_cond_frames") and frames else None
    label = (config.get("class_names") or ["0"])[0] if config.get("n_classes") else None
    width = config.get("action_dim") or 2
    actions = {"headers": [f"a{i + 1}" for i in range(width)], "data": [[0.0] * width] * 4}
    return name, first, label, actions, 0, False, 1, 4, 1.0, 0, 1.0, 1.0


@pytest.mark.slow
def test_the_exported_space_serves_every_shipped_model(space):
    from gradio_client import Client, handle_file

    sys.path.insert(0, str(REPO / "tests"))
    from demo_helpers import free_port

    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=space, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}/", time.time() + 300
        while True:
            assert process.poll() is None and time.time() < deadline, "the Space's app.py did not serve"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(1)
        client = Client(url, verbose=False)
        pipelines = sorted(p.parent.name for p in (space / "checkpoints").glob("*/prior"))
        for name in pipelines:
            assert client.predict(*generation_inputs(space, name), api_name="/generate")[1].startswith("Done:"), name
        codecs = sorted(p.parent.name for p in (space / "checkpoints").glob("*/vqvae"))  # the general codec too
        clip = handle_file(str(space / "demo" / "examples" / "photo-camera-test-clip.mp4"))
        report = client.predict(clip, codecs, 64, 8, api_name="/reconstruct")[5]
        assert sorted(codec["name"] for codec in report["codecs"]) == codecs
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert f"serving {len(pipelines)} model(s): {', '.join(pipelines)}" in output
