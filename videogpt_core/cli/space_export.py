"""`videogpt export-space OUT`: the demo as a folder ready to push to a Hugging Face Space (Gradio SDK).

The folder holds app.py, demo/, the library (videogpt_core/), the shipped models under checkpoints/ (weights,
configs, cards, pictures and learning curves, but not the trainer state in their training/checkpoint/ folders,
which only resumes training), requirements.txt, a README.md with the Space's front matter and a .gitattributes
whose LFS rules cover every binary file and every file over 10 MB: the Hub refuses both in plain git.
"""
from __future__ import annotations

import argparse
import fnmatch
import pickletools
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from videogpt_core.models.model_folders import find_codec_folders

REPO_ROOT = Path(__file__).resolve().parents[2]  # a clone's root, when the package runs from the clone
FILES = ("app.py", "requirements.txt")
FOLDERS = ("demo", "videogpt_core", "checkpoints")
SKIPPED_FOLDERS = {"__pycache__", ".pytest_cache", ".gradio"}
SKIPPED_SUFFIXES = {".pyc", ".pyi"}  # .pyi: written by Gradio beside its component templates at run time
TRAINER_STATE = ("training", "checkpoint")  # checkpoints/NAME/training/checkpoint/: optimizer, RNG, data order
SPACE_CLONE = {".git", ".gitattributes", "README.md"}  # what a new Space's clone holds: OUT may be one
LFS_LIMIT = 10 * 1024 * 1024  # bytes: larger files must be LFS files on the Hub, binary or not
LFS_ATTRIBUTES = "filter=lfs diff=lfs merge=lfs -text"
# The patterns of Hugging Face's own .gitattributes for new repositories, and the media the demo ships.
LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
    "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
    "*.pth", "*.rar", "*.safetensors", "*.tar.*", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst",
    "*tfevents*", "*.png", "*.jpg", "*.jpeg", "*.gif", "*.webp", "*.mp4", "*.avi", "*.webm", "*.mov", "*.mkv",
)


@dataclass
class SpaceExport:
    folder: Path
    files: list[str]  # relative paths, .gitattributes and README.md included
    lfs_files: list[str]  # those that need LFS (binary or over LFS_LIMIT), all covered by a rule
    models: list[str]  # the checkpoints/ folders served
    total_bytes: int


def space_files(root: Path) -> list[str]:
    """The repository's files that go into the Space, as sorted relative paths."""
    paths = list(FILES)
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            parts = path.relative_to(root).parts
            if (path.is_file() and not SKIPPED_FOLDERS & set(parts) and path.suffix not in SKIPPED_SUFFIXES
                    and not _in_trainer_state(parts)):
                paths.append("/".join(parts))
    return sorted(paths)


def _in_trainer_state(parts: tuple[str, ...]) -> bool:
    return parts[0] == "checkpoints" and any(parts[i: i + 2] == TRAINER_STATE for i in range(len(parts) - 1))


def is_binary(path: Path) -> bool:
    """Git's test: a NUL byte in the first 8000 bytes."""
    with open(path, "rb") as file:
        return b"\0" in file.read(8000)


def is_pickle(path: Path) -> bool:
    """A pickle or a zip holding one (torch.save's format): loading either runs code. A pickle header alone can
    be chance (a safetensors file whose header is 640 bytes long starts with the same two bytes), so the whole
    stream must parse as pickle opcodes up to STOP."""
    with open(path, "rb") as file:
        head = file.read(4)
        if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            file.seek(0)
            try:
                return any(opcode.name == "STOP" for opcode, _, _ in pickletools.genops(file))
            except (ValueError, EOFError):
                return False
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith((".pkl", ".pickle")) for name in archive.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def needs_lfs(path: Path) -> bool:
    return path.stat().st_size > LFS_LIMIT or is_binary(path)


def lfs_pattern_for(relative: str) -> str | None:
    """The LFS pattern that covers a file, by git's rule for patterns without a slash (the file's name)."""
    name = relative.rsplit("/", 1)[-1]
    return next((pattern for pattern in LFS_PATTERNS if fnmatch.fnmatchcase(name, pattern)), None)


def gitattributes(files_needing_lfs: list[str]) -> str:
    """Hugging Face's LFS patterns, then a rule of its own for each file that needs LFS and matches none."""
    lines = ["# Stored with Git LFS on the Hub: binary files and every file over 10 MB."]
    lines += [f"{pattern} {LFS_ATTRIBUTES}" for pattern in LFS_PATTERNS]
    lines += [f"/{relative.replace(' ', '[[:space:]]')} {LFS_ATTRIBUTES}" for relative in files_needing_lfs
              if lfs_pattern_for(relative) is None]
    return "\n".join(lines) + "\n"


def front_matter(readme: str) -> str:
    """The YAML block between the README's first two `---` lines, with them."""
    lines = readme.splitlines()
    if not lines or lines[0].strip() != "---" or "---" not in [line.strip() for line in lines[1:]]:
        raise ValueError("README.md has no front matter (a block between two '---' lines at the top), which a "
                         "Space needs for its SDK and app file")
    end = 1 + [line.strip() for line in lines[1:]].index("---")
    return "\n".join(lines[: end + 1]) + "\n"


def space_readme(front: str, models: list[str]) -> str:
    listed = ", ".join(f"`{name}`" for name in models) or "none"
    return front + f"""
# VideoGPT

A VQ-VAE compresses video into a small grid of discrete codes; a GPT samples those codes one by one, conditioned
on a first frame, a class or per-frame actions, and the VQ-VAE decodes them back into frames (VideoGPT, Yan et
al., ICCV 2021). Models here: {listed}; each one's card is in the app's Model tab and in `checkpoints/NAME/`.

Run it on your own machine: `pip install -r requirements.txt && python app.py`, then open http://127.0.0.1:7860.
This folder was written by `videogpt export-space` from the VideoGPT repository, which also trains, evaluates
and samples the models from the command line.
"""


def _check_source(root: Path) -> None:
    missing = [name for name in (*FILES, *FOLDERS, "README.md") if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(f"{root} is not a clone of the VideoGPT repository (no {', '.join(missing)}); "
                                "run `videogpt export-space` inside a clone or give the clone with --source DIR")


def _check_out(out: Path, root: Path) -> None:
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise ValueError(f"{out} is inside the repository it would copy; choose a folder outside {root}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the Space")
    extra = sorted(path.name for path in out.iterdir() if path.name not in SPACE_CLONE) if out.is_dir() else []
    if extra:
        raise ValueError(f"{out} already holds {', '.join(extra[:5])}; give a new or empty folder (a fresh clone "
                         "of a Space, holding only .git, .gitattributes and README.md, will do)")


def export_space(out: str | Path, root: str | Path = REPO_ROOT) -> SpaceExport:
    """Write the Space folder `out` from the repository at `root`; refuses before writing anything if a file
    to ship is a pickle or `out` already holds other files."""
    out, root = Path(out), Path(root)
    _check_source(root)
    _check_out(out, root)
    front = front_matter((root / "README.md").read_text())
    files = space_files(root)
    pickles = [relative for relative in files if is_pickle(root / relative)]
    if pickles:
        raise ValueError(f"{', '.join(pickles)}: pickled file(s), which a Space must not ship (loading one runs "
                         "code); save the weights as safetensors or leave the file out")
    for relative in files:
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, out / relative)
    models = sorted(find_codec_folders([out / "checkpoints"], must_exist=False))
    (out / "README.md").write_text(space_readme(front, models))
    files = sorted({*files, "README.md"})
    lfs_files = [relative for relative in files if needs_lfs(out / relative)]
    (out / ".gitattributes").write_text(gitattributes(lfs_files))
    files.append(".gitattributes")
    return SpaceExport(out, files, lfs_files, models, sum((out / relative).stat().st_size for relative in files))


def default_source() -> Path:
    """The clone this package runs from (an editable install), else the current folder (a plain install run
    inside a clone)."""
    return REPO_ROOT if (REPO_ROOT / "app.py").is_file() else Path.cwd()


def _run(args: argparse.Namespace) -> int:
    export = export_space(args.out, args.source or default_source())
    print(f"wrote {len(export.files)} files ({export.total_bytes / 1e6:.1f} MB) to {export.folder}: the app, the "
          f"library and {len(export.models)} model(s) ({', '.join(export.models)}) without trainer state; "
          f"{len(export.lfs_files)} files under LFS rules (.gitattributes)")
    print(f"try it: cd {export.folder} && pip install -r requirements.txt && python app.py")
    return 0


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-space", help="write the demo as a folder ready to push to a Hugging Face Space",
        description="Write OUT as a Hugging Face Space (Gradio SDK): app.py, demo/, videogpt_core/, the shipped "
        "models (weights, configs, cards; no trainer state), requirements.txt, README.md with the Space's front "
        "matter and a .gitattributes whose LFS rules cover every binary file and every file over 10 MB.",
        epilog="then: cd OUT && git init && git lfs install && git add . && git commit -m 'VideoGPT demo' && "
        "git remote add space https://huggingface.co/spaces/USER/NAME && git push space HEAD:main")
    parser.add_argument("out", metavar="OUT", type=Path,
                        help="the Space folder to write: new, empty, or a fresh clone of a Space")
    parser.add_argument("--source", type=Path, default=None, metavar="DIR",
                        help="the clone of the repository to export (default: the clone this package runs from, "
                             "else the current folder)")
    parser.set_defaults(func=_run)
