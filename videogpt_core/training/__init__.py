"""Training of both stages on Hugging Face Accelerate (CPU, one GPU or many; mixed precision; atomic
checkpoints; exact resume).

    trainer.py          the loop (Trainer) for any TrainingTask (task.py)
    vqvae_task.py       stage 1 as a task; prior_task.py: stage 2
    vqvae_stage.py      stage 1 built from a TrainerConfig and VQVAEStageOptions; prior_stage.py: stage 2
    stage_options.py    the stages' options and the size preset (sizes.py) that fills the unset ones
    run_folder.py       the run folder and its checkpoint: atomic save, verified load
    data_order.py       batches and per-item randomness as functions of (seed, epoch, position)
    stop_signals.py     SIGINT / SIGTERM: save and stop; data-loading workers ignore them
    cli.py              `videogpt train-vqvae` / `train-prior`: argparse -> the configs
"""
from videogpt_core.training.prior_stage import train_prior
from videogpt_core.training.prior_task import PriorTask
from videogpt_core.training.run_folder import find_checkpoint, load_checkpoint
from videogpt_core.training.stage_options import PriorStageOptions, VQVAEStageOptions
from videogpt_core.training.task import TrainingTask
from videogpt_core.training.trainer import Trainer
from videogpt_core.training.trainer_config import TrainerConfig, TrainResult
from videogpt_core.training.vqvae_stage import train_vqvae
from videogpt_core.training.vqvae_task import VQVAETask

__all__ = ["PriorStageOptions", "PriorTask", "TrainResult", "Trainer", "TrainerConfig", "TrainingTask",
           "VQVAEStageOptions", "VQVAETask", "find_checkpoint", "load_checkpoint", "train_prior", "train_vqvae"]
