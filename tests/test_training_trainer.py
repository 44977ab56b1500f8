"""The loop on any task: schedule, config checks, TensorBoard videos, learning, a NaN loss stopping the run."""
import pytest
import torch
from torch.utils.data import Dataset

from training_helpers import QUIET, trainer_state
from videogpt_core.training import Trainer, TrainerConfig, TrainingTask
from videogpt_core.training.media import write_video_summary
from videogpt_core.training.optimization import lr_multiplier


def test_lr_schedule_warmup_then_cosine():
    values = [lr_multiplier(s, warmup=4, total=14, min_ratio=0.1) for s in range(15)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))
    assert values[14] == pytest.approx(0.1)
    assert lr_multiplier(9, warmup=4, total=14) == pytest.approx(0.5)


def test_trainer_config_rejects_bad_values():
    with pytest.raises(ValueError, match="--grad-accum"):
        TrainerConfig(out_dir="x", grad_accum=0)
    with pytest.raises(ValueError, match="--mixed-precision"):
        TrainerConfig(out_dir="x", mixed_precision="fp8")


def test_video_summary_is_written_as_an_image(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    write_video_summary(writer, "reconstruction", torch.rand(2, 3, 5, 8, 16) - 0.5, step=3)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    (image,) = events.Images("reconstruction")
    assert image.step == 3 and (image.width, image.height) == (32, 8)
    assert image.encoded_image_string[:6] == b"GIF89a"


class LineTask(TrainingTask):
    """The smallest task: fit y = 3x - 1 with one linear layer (the trainer knows nothing else)."""

    kind = "line"

    def __init__(self, poison_at_step=None):
        super().__init__(torch.nn.Linear(1, 1))
        self.poison_at_step, self.calls = poison_at_step, 0

    def loss(self, model, batch):
        self.calls += 1
        loss = torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])
        if self.poison_at_step is not None and self.calls >= self.poison_at_step:
            loss = loss * float("nan")
        return {"loss": loss}

    def export(self, model, directory):
        torch.save(model.state_dict(), directory / "line.pt")


class Points(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, index):
        x = torch.tensor([index / 8 - 1.0])
        return {"x": x, "y": 3 * x - 1}


def test_any_task_trains_through_the_interface(tmp_path):
    config = TrainerConfig(out_dir=str(tmp_path / "run"), steps=60, batch_size=4, lr=0.3, warmup=0, **QUIET)
    result = Trainer(config, LineTask(), Points(), val_dataset=Points()).fit()
    assert result.losses[-1] < 0.01 * result.losses[0]
    weights = torch.load(tmp_path / "run" / "model" / "line.pt")
    assert weights["weight"].item() == pytest.approx(3.0, abs=0.1)


def test_a_nan_loss_stops_before_it_is_checkpointed(tmp_path):
    config = TrainerConfig(out_dir=str(tmp_path / "run"), steps=10, batch_size=4, **{**QUIET, "log_every": 5,
                                                                                          "save_every": 2})
    with pytest.raises(ValueError, match="loss became nan by step 4"):
        Trainer(config, LineTask(poison_at_step=3), Points()).fit()
    assert trainer_state(tmp_path / "run")["step"] == 2


@pytest.mark.slow
def test_a_compiled_training_forward_takes_the_same_steps(tmp_path):
    losses = {}
    for compile in (False, True):
        torch.manual_seed(0)
        config = TrainerConfig(out_dir=str(tmp_path / f"run-{compile}"), steps=6, batch_size=4, lr=0.3, warmup=0,
                               compile=compile, **QUIET)
        losses[compile] = Trainer(config, LineTask(), Points()).fit().losses
    # bf16 autocast (this CPU's default): inductor's fused kernels round differently from eager ones by ~0.2%.
    assert losses[True] == pytest.approx(losses[False], rel=1e-2)
    weights = torch.load(tmp_path / "run-True" / "model" / "line.pt")  # the model's own names, not the compiler's
    assert sorted(weights) == ["bias", "weight"]
