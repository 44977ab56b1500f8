"""UCF-101 (root/ClassName/v_ClassName_gXX_cYY.avi), optionally restricted by the official split lists.

Split lists: `trainlistNN.txt` ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"), `testlistNN.txt`
(the same without the label) and `classInd.txt` ("1 ApplyEyeMakeup"), found in root,
root/ucfTrainTestlist or beside root; labels are classInd's minus one.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from videogpt_core.data.video_folder import VideoFolderDataset, VideoList, list_videos

SPLIT_FOLDER = "ucfTrainTestlist"


def find_split_file(root: Path, train: bool, fold: int = 1) -> Path | None:
    """The official train/test list for `fold` in root, root/ucfTrainTestlist or root's parent."""
    name = f"{'train' if train else 'test'}list{fold:02d}.txt"
    for folder in (root, root / SPLIT_FOLDER, root.parent, root.parent / SPLIT_FOLDER):
        if (folder / name).is_file():
            return folder / name
    return None


def read_class_index(path: Path) -> list[str]:
    """classInd.txt ("1 ApplyEyeMakeup" per line) -> class names in label order (label = index)."""
    numbered = {}
    for line_number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{line_number}: expected '<number> <ClassName>', got {line!r}")
        numbered[int(parts[0])] = parts[1]
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise ValueError(f"{path}: class numbers must run 1..{len(numbered)} without gaps")
    return [numbered[number] for number in range(1, len(numbered) + 1)]


class UCF101Dataset(VideoFolderDataset):
    """Clips of UCF-101 videos with action labels (0-based), in the official split when one is found.

    `split_file` is a trainlistNN.txt / testlistNN.txt file, or a folder holding them (then
    `train` and `fold` pick the file). Without one, the lists are looked for beside the videos;
    when there are none, every video under the class folders is used, classes sorted
    alphabetically (which is also classInd's order). Videos may sit in root or root/UCF-101.
    """

    def __init__(
        self,
        root: str | Path,
        sequence_length: int,
        resolution: int,
        split_file: str | Path | None = None,
        train: bool = True,
        frame_stride: int = 1,
        fold: int = 1,
        eval_seed: int | None = None,
    ):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"UCF-101 folder not found: {root}")
        if split_file is None:
            self.split_file = find_split_file(root, train, fold)
        else:
            split_file = Path(split_file)
            if split_file.is_dir():
                found = find_split_file(split_file, train, fold)
                if found is None:
                    raise FileNotFoundError(f"no {'train' if train else 'test'}list{fold:02d}.txt in {split_file}")
                split_file = found
            if not split_file.is_file():
                raise FileNotFoundError(f"UCF-101 split list not found: {split_file}")
            self.split_file = split_file
        # The official archive unpacks to UCF-101/ next to ucfTrainTestlist/.
        self.video_root = root / "UCF-101" if (root / "UCF-101").is_dir() else root
        super().__init__(root, sequence_length, resolution, frame_stride, train, (".avi", ".mp4"), eval_seed)

    def _find_videos(self) -> VideoList:
        if self.split_file is None:
            videos = list_videos(self.video_root, self.extensions)
            if videos.class_names is None:
                raise ValueError(
                    f"{self.video_root} does not look like UCF-101: videos must sit in class folders "
                    "(root/ClassName/v_ClassName_gXX_cYY.avi)"
                )
            return videos
        class_index = self.split_file.parent / "classInd.txt"
        if class_index.is_file():
            class_names = read_class_index(class_index)
        else:
            class_names = sorted(p.name for p in self.video_root.iterdir() if p.is_dir() and not p.name.startswith("."))
        label_of = {name: label for label, name in enumerate(class_names)}
        paths, labels = [], []
        for line_number, line in enumerate(self.split_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            relative = line.split()[0]
            class_name = relative.split("/")[0]
            if class_name not in label_of:
                raise ValueError(
                    f"{self.split_file}:{line_number}: class {class_name!r} is not in "
                    f"{class_index if class_index.is_file() else 'the class folders of ' + str(self.video_root)}"
                )
            path = self.video_root / relative
            if not path.is_file():
                self.skipped.append((str(path), f"listed in {self.split_file.name} but missing"))
                continue
            paths.append(path)
            labels.append(label_of[class_name])
        if self.skipped:
            warnings.warn(
                f"{len(self.skipped)} videos listed in {self.split_file} are missing under {self.video_root}; "
                f"first: {self.skipped[0][0]}",
                stacklevel=3,
            )
        return VideoList(paths, labels, class_names)
