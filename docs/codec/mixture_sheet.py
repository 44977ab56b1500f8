"""Draw docs/codec/mixture.png: 12 train and 4 test episodes of a mixture file, every other frame, each row
named by its split and source.

    python docs/codec/mixture_sheet.py /work/data/mixture/mixture.hdf5 docs/codec/mixture.png
"""
import json
import sys

import cv2
import h5py
import numpy as np
from PIL import Image


def contact_sheet(path: str) -> np.ndarray:
    rows = []
    with h5py.File(path) as file:
        names = json.loads(file.attrs["sources"])
        n_frames = int(file.attrs["n_frames"])
        for split, picks in (("train", np.linspace(0, len(file["train_idx"]) - 1, 12).astype(int)),
                             ("test", range(4))):
            for index in picks:
                start = int(file[f"{split}_idx"][index])
                clip = file[f"{split}_data"][start: start + n_frames]
                label = np.zeros((clip.shape[1], 96, 3), np.uint8)
                source = names[int(file[f"{split}_source"][index])]
                for text, y, grey in ((split, 24, 200), (source, 44, 255)):
                    cv2.putText(label, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (grey,) * 3, 1, cv2.LINE_AA)
                rows.append(np.concatenate([label, *clip[::2]], axis=1))
    return np.concatenate(rows, axis=0)


if __name__ == "__main__":
    sheet = Image.fromarray(contact_sheet(sys.argv[1]))
    # A 256-colour palette keeps the file small; at 64 px per frame the loss is not visible.
    palette = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(sys.argv[2], optimize=True)
