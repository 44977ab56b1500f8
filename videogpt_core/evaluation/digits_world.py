"""World-model scores on the digits world: a digit classifier's accuracy on real test clips, then on
class-conditional samples (each labelled with the class it was conditioned on)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videogpt_core.data.transforms import from_model_video
from videogpt_core.evaluation.clips import WORLD_SPLIT, batches, first_frames_condition, resize_clips, sample_clips
from videogpt_core.evaluation.digit_classifier import (
    classify_clips, load_digit_classifier, save_digit_classifier, train_digit_classifier,
)
from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.inference.sampling_options import SamplingOptions

CLASSIFIER_FRAMES_PER_CLIP = 4  # the classifier trains on single frames; a few per clip are enough


def _digit_classifier(data: Path, sequence_length: int, frame_stride: int, steps: int, seed: int,
                      max_train_clips: int, load_from: str | os.PathLike | None,
                      save_to: str | os.PathLike | None, progress: bool):
    """A digit classifier loaded from a folder, or trained on real train clips (and saved when asked)."""
    from videogpt_core.data.hdf5 import HDF5VideoDataset

    if load_from is not None:
        model, source = load_digit_classifier(load_from), str(load_from)
    else:
        train_set = HDF5VideoDataset(data, sequence_length, None, train=False, split="train",
                                     frame_stride=frame_stride)
        n = min(max_train_clips, len(train_set))
        keep = np.linspace(0, sequence_length - 1, min(CLASSIFIER_FRAMES_PER_CLIP, sequence_length)).round()
        frames, labels = [], []
        for batch in batches(train_set, n, 64, "classifier data", progress):
            frames.append(from_model_video(batch["video"])[:, keep.astype(int)])
            labels.append(batch["label"].numpy())
        model = train_digit_classifier(np.concatenate(frames), np.concatenate(labels), steps=steps, seed=seed)
        source = f"trained on {n} train clips ({steps} steps)"
    if save_to is not None:
        save_digit_classifier(model, save_to)
    return model, source


def digits_world_scores(pipeline: VideoGPTPipeline, data: Path, samples_per_class: int, batch_size: int,
                        options: SamplingOptions, seed: int, frame_stride: int = 1, max_clips: int | None = None,
                        classifier_dir: str | os.PathLike | None = None,
                        save_classifier_to: str | os.PathLike | None = None, classifier_steps: int = 400,
                        max_classifier_train_clips: int = 1000, progress: bool = False) -> dict[str, Any]:
    """A small digit classifier's accuracy on real test clips, then on class-conditional samples (labelled
    with the class they were conditioned on). A frame-conditional prior also gets the first frame(s) of a real
    test clip of that class, which can carry the digit's shape: say so in `conditioning`."""
    from videogpt_core.data.hdf5 import HDF5VideoDataset

    config = pipeline.prior.config
    test_set = HDF5VideoDataset(data, config.sequence_length, None, train=False, split=WORLD_SPLIT,
                                frame_stride=frame_stride)
    if not test_set.has_labels:
        raise ValueError(f"{data} has no '{WORLD_SPLIT}_labels'; it is not a digits world file")
    classifier, source = _digit_classifier(data, config.sequence_length, frame_stride, classifier_steps, seed,
                                           max_classifier_train_clips, classifier_dir, save_classifier_to, progress)
    n_test = len(test_set) if max_clips is None else min(max_clips, len(test_set))
    correct = 0
    for batch in batches(test_set, n_test, batch_size, "classifier test", progress):
        correct += int((classify_clips(classifier, from_model_video(batch["video"])) == batch["label"].numpy()).sum())
    result: dict[str, Any] = {"world": "digits", "classifier": source, "real_test_clips": n_test,
                              "real_test_accuracy": correct / n_test}

    n_data_classes = len(test_set.class_names)
    if not config.n_classes:
        result["samples_skipped"] = "the prior is not class-conditional"
    elif config.n_classes != n_data_classes or config.action_dim:
        result["samples_skipped"] = (f"the prior (n_classes={config.n_classes}, action_dim={config.action_dim}) "
                                     f"does not fit the digits world ({n_data_classes} classes, no actions)")
    else:
        result.update(_sample_accuracy(pipeline, classifier, test_set, samples_per_class, batch_size, options, seed))
    return result


def _class_first_frames(test_set, classes: list[int]) -> tuple[np.ndarray, list[int]]:
    """uint8 (n, k, H, W, 3): the frames of the first real test clip of each class that has one, and the
    classes without one (nothing to lend a frame-conditional prior)."""
    labels = test_set.labels[test_set.video_ids]
    without = [c for c in classes if not (labels == c).any()]
    first_frames = np.stack([from_model_video(test_set[int(np.flatnonzero(labels == c)[0])]["video"])
                             for c in classes if c not in without])
    return first_frames, without


def _sample_accuracy(pipeline: VideoGPTPipeline, classifier, test_set, samples_per_class: int, batch_size: int,
                     options: SamplingOptions, seed: int) -> dict[str, Any]:
    """The classifier's accuracy on samples_per_class samples of each class, each labelled with its class."""
    config, device = pipeline.prior.config, pipeline.device
    classes = list(range(config.n_classes))
    skipped_classes: list[int] = []
    conditioning = "label"
    first_frames = None  # (n_classes, k, H, W, 3): what a frame-conditional prior sees for each class
    if config.n_cond_frames:
        first_frames, skipped_classes = _class_first_frames(test_set, classes)
        classes = [c for c in classes if c not in skipped_classes]
        conditioning = "label + " + first_frames_condition(config, first_frames[:1], device,
                                                           f"a real {WORLD_SPLIT} clip of the class")[1]
    # Every row its own class (and first frame), so a batch mixes classes.
    row_classes = np.repeat(np.arange(len(classes)), samples_per_class)
    generator = torch.Generator(device=device).manual_seed(seed)
    clips = []
    for start in range(0, len(row_classes), batch_size):
        rows = row_classes[start: start + batch_size]
        labels_tensor = torch.tensor([classes[i] for i in rows], dtype=torch.long, device=device)
        condition = {} if first_frames is None else \
            first_frames_condition(config, first_frames[rows], device, "")[0]
        clips.append(sample_clips(pipeline, len(rows), options, generator, labels=labels_tensor, **condition))
    predicted = classify_clips(classifier, resize_clips(np.concatenate(clips), test_set.frame_size[0]))
    true_labels = np.array([classes[i] for i in row_classes])
    result = {
        "conditioning": conditioning,
        "samples_per_class": samples_per_class,
        "sample_accuracy": float(np.mean(predicted == true_labels)),
        "sample_accuracy_per_class": {str(c): float(np.mean(predicted[true_labels == c] == c)) for c in classes},
    }
    if skipped_classes:
        result["classes_without_test_clip"] = skipped_classes
    return result
