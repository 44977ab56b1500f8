"""Model configurations: each dataclass is exactly its model's constructor arguments and its config.json."""
from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass

from videogpt_core.models.fsq import fsq_codebook_shape


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _check_positive(config, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")


@dataclass
class VQVAEConfig:
    embedding_dim: int = 256
    n_codes: int = 2048
    n_hiddens: int = 240
    n_res_layers: int = 4
    downsample: tuple[int, int, int] = (4, 4, 4)  # (T, H, W) factors, each a power of two
    sequence_length: int = 16  # frames per training clip
    resolution: int = 64  # square frame size
    n_attn_heads: int = 2  # heads of the axial attention in each residual block
    commitment_cost: float = 0.25
    ema_decay: float = 0.99
    recon_loss_scale: float = 0.06  # the reference divides the MSE by this (about the data variance)
    # Time-causal: frames 1..k encode the same whatever follows them (each frame its own latent slice, so
    # downsample (1, h, w)); a world model's given frames are then exact prefix codes. False: the reference.
    causal: bool = False
    # Per frame: every frame encoded and decoded alone (2D kernels, no attention along time), an image codec
    # applied frame by frame. Implies causal; a frame's codes never depend on the frames before it either.
    per_frame: bool = False
    # Finite scalar quantisation instead of the EMA codebook: the levels of each code channel (e.g. 8,8,8,5,5,5);
    # then n_codes is their product and embedding_dim their count. None: the learned codebook (the reference).
    fsq_levels: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.fsq_levels is not None:
            self.fsq_levels = tuple(int(n) for n in self.fsq_levels)
            self.n_codes, self.embedding_dim = fsq_codebook_shape(self.fsq_levels)
        _check_positive(self, ("embedding_dim", "n_codes", "n_hiddens", "n_res_layers", "sequence_length",
                               "resolution", "n_attn_heads"))
        self.downsample = tuple(int(d) for d in self.downsample)
        if len(self.downsample) != 3 or not all(_is_power_of_two(d) for d in self.downsample):
            raise ValueError(f"downsample must be three powers of two (T, H, W), got {self.downsample}")
        if max(self.downsample) < 2:
            raise ValueError("downsample must halve at least one axis, e.g. (1, 2, 2)")
        if self.sequence_length % self.downsample[0] or self.resolution % self.downsample[1] \
                or self.resolution % self.downsample[2]:
            raise ValueError(f"sequence_length {self.sequence_length} and resolution {self.resolution} "
                             f"must be divisible by downsample {self.downsample}")
        if self.per_frame and not self.causal:
            raise ValueError("a per-frame VQ-VAE is causal too: set causal=True with per_frame=True")
        if self.causal and self.downsample[0] != 1:
            raise ValueError(f"a causal VQ-VAE gives each frame its own latent slice: use downsample (1, h, w), "
                             f"got {self.downsample}")
        if self.n_hiddens % 2 or self.n_hiddens % self.n_attn_heads:
            raise ValueError(f"n_hiddens ({self.n_hiddens}) must be even and divisible by n_attn_heads")

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        t, h, w = self.downsample
        return (self.sequence_length // t, self.resolution // h, self.resolution // w)


@dataclass
class VideoGPTConfig:
    latent_shape: tuple[int, int, int] = (4, 16, 16)  # (t, h, w) of the VQ-VAE's codes
    n_codes: int = 2048
    embedding_dim: int = 256  # width of the VQ-VAE codebook vectors that are the prior's input
    sequence_length: int = 16  # video frames that the latent grid covers
    resolution: int = 64  # frame size (for frame conditioning)
    hidden_dim: int = 576
    n_heads: int = 4
    n_layers: int = 8
    dropout: float = 0.2
    attn_dropout: float = 0.3
    # Conditioning: any combination of first frames, a class, per-frame actions and a vector per clip.
    n_cond_frames: int = 0
    frame_encoder_widths: tuple[int, ...] = (64, 128, 256, 240)  # the reference's 3D ResNet-34
    frame_encoder_blocks: tuple[int, ...] = (3, 4, 6, 3)
    n_classes: int = 0
    class_names: list[str] | None = None
    action_dim: int = 0
    action_embed_dim: int = 64
    # [low, high] of each action dimension in the training data: actions outside it are refused at sampling
    # (far outside, the conditional norms saturate and the logits turn NaN). None: not recorded.
    action_range: list[list[float]] | None = None
    context_dim: int = 0  # width of a vector given per clip (e.g. a text embedding); 0: none
    context_embed_dim: int = 64
    cond_drop_prob: float = 0.0  # train-time condition dropout, so classifier-free guidance works

    def __post_init__(self):
        _check_positive(self, ("n_codes", "embedding_dim", "sequence_length", "resolution", "hidden_dim", "n_heads",
                               "n_layers"))
        self.latent_shape = tuple(int(s) for s in self.latent_shape)
        self.frame_encoder_widths = tuple(int(w) for w in self.frame_encoder_widths)
        self.frame_encoder_blocks = tuple(int(b) for b in self.frame_encoder_blocks)
        if self.hidden_dim % 3 or self.hidden_dim % self.n_heads:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must be divisible by 3 (one third per "
                             f"latent axis of the position embedding) and by n_heads ({self.n_heads})")
        if self.sequence_length % self.latent_shape[0]:
            raise ValueError("sequence_length must be a multiple of the latent time steps")
        if self.n_cond_frames:
            width = self.frame_encoder_widths[-1]
            if len(self.frame_encoder_widths) != 4 or len(self.frame_encoder_blocks) != 4:
                raise ValueError("the frame encoder has four groups: give four widths and four block counts")
            if width % 3 or width % self.n_heads:
                raise ValueError(f"the frame encoder's last width ({width}) must divide by 3 and n_heads")
            if self.resolution % 4:
                raise ValueError("frame conditioning needs a resolution divisible by 4")
        if self.class_names is not None:
            self.class_names = [str(c) for c in self.class_names]
            if len(self.class_names) != self.n_classes:
                raise ValueError(f"{len(self.class_names)} class_names for n_classes={self.n_classes}")
        if self.action_range is not None:
            self.action_range = [[float(low), float(high)] for low, high in self.action_range]
            if len(self.action_range) != self.action_dim:
                raise ValueError(f"action_range has {len(self.action_range)} [low, high] pairs for "
                                 f"action_dim={self.action_dim}")
            if not all(math.isfinite(low) and math.isfinite(high) and low <= high for low, high in self.action_range):
                raise ValueError(f"action_range must hold finite [low, high] pairs with low <= high, "
                                 f"got {self.action_range}")

    @property
    def frames_per_latent(self) -> int:
        return self.sequence_length // self.latent_shape[0]

    @property
    def seq_len(self) -> int:
        return math.prod(self.latent_shape)

    @property
    def cond_dim(self) -> int:
        """Width of the vector that drives the conditional LayerNorms (class one-hot + action embedding +
        context embedding)."""
        return self.n_classes + (self.action_embed_dim if self.action_dim else 0) \
            + (self.context_embed_dim if self.context_dim else 0)


def config_to_dict(config) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def _matches(value, kind) -> bool:
    """Whether a JSON value fits a field's annotation (int, float, str, tuple[int, ...], list[...], X | None)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in args)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return all(_matches(v, args[0]) for v in value) if args else True
    return True


def _type_name(kind) -> str:
    return str(kind).replace("typing.", "") if typing.get_origin(kind) else kind.__name__


def config_from_dict(cls, data: dict, source: str = "config"):
    """A config from a config.json's dict; wrong field names or value types are a ValueError naming them."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: must be a JSON object of {cls.__name__} fields, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown {cls.__name__} fields {unknown}; is this the right kind of model?")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if not _matches(value, hints[name]):
            raise ValueError(f"{source}: field {name!r} must be {_type_name(hints[name])}, got {value!r}")
    try:
        return cls(**data)
    except (ValueError, TypeError, ZeroDivisionError) as error:
        raise ValueError(f"{source}: {error}") from None


__all__ = ["VQVAEConfig", "VideoGPTConfig", "config_to_dict", "config_from_dict"]
