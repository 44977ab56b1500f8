"""`videogpt eval`: scores of a checkpoint on a data set, one concept per file.

    evaluate.py          the orchestration: which parts run (and why the others cannot), the JSON report
    inputs.py            the checkpoint folder and the data set split (fixed clips)
    clips.py             batches of the scored clips, their conditions, samples drawn one per row under them
    reconstruction.py    the VQ-VAE: NMSE, PSNR, SSIM, codebook usage
    prior_bits.py        the prior: bits per latent token
    worlds.py            world-model scores dispatched by world: pusher_world.py, digits_world.py (with
                         digit_classifier.py), simulated_worlds.py (vizdoom_world.py, fetchpush_world.py);
                         rollout_scores.py holds what they share
    cli.py               the `videogpt eval` command line
    metrics.py           the metrics themselves: PSNR, SSIM, NMSE, bits per token, codebook usage (training and
                         the codec comparison use them too)
FVD lives in videogpt_core/fvd.
"""
