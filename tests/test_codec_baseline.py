"""The block-mean baseline: each block of the latent grid keeps its mean colour, and costs 24 bits."""
import numpy as np
import pytest

from videogpt_core.codecs.codec_baseline import block_mean_bits, block_means


def test_a_clip_made_of_flat_blocks_is_kept_exactly_and_other_clips_by_their_block_means():
    rng = np.random.default_rng(0)
    flat = np.repeat(np.repeat(np.repeat(rng.integers(0, 256, (2, 3, 2, 3), dtype=np.uint8), 2, 0), 4, 1), 8, 2)
    assert flat.shape == (4, 12, 16, 3)
    np.testing.assert_array_equal(block_means(flat, (2, 4, 8)), flat)

    clip = rng.integers(0, 256, (4, 12, 16, 3), dtype=np.uint8)
    means = block_means(clip, (2, 4, 8))
    block = clip[2:4, 4:8, 8:16].reshape(-1, 3).mean(0)
    np.testing.assert_array_equal(means[3, 5, 9], np.round(block).astype(np.uint8))
    assert block_mean_bits(clip, (2, 4, 8)) == 2 * 3 * 2 * 24


def test_a_last_partial_block_in_time_repeats_the_last_frame():
    clip = np.zeros((5, 4, 4, 3), np.uint8)
    clip[4] = 200
    means = block_means(clip, (4, 4, 4))
    assert means.shape == clip.shape and (means[4] == 200).all()  # frames 5..8 are all the last frame
    assert block_mean_bits(clip, (4, 4, 4)) == 2 * 24


def test_frames_the_blocks_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="do not divide into 8x8 blocks"):
        block_means(np.zeros((4, 12, 16, 3), np.uint8), (1, 8, 8))
