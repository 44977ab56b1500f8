"""Gradients laid out as DistributedDataParallel's buckets expect.

DDP copies each gradient into a flat bucket through a view with the parameter's strides, and warns ("Grad
strides do not match bucket view strides") when a gradient's strides differ. They do for the weights of 1x1x1
convolutions, (O, I, 1, 1, 1) with strides (I, 1, 1, 1, 1), given a channels-last input: the VQ-VAE's
convolution after the codebook, whose input is the looked-up code vectors moved to channels-first (a view), and
one in the decoder's residual blocks, under bf16 autocast on the CPU. Such a convolution returns its weight's
gradient channels-last, with strides (I, 1, I, I, I). A size-1 dimension's stride never addresses a second
element, so autograd accepts either layout and the two are the same memory; only DDP compares every stride.
Re-viewing such a gradient with the parameter's strides is free, and makes the bucket copy a plain one.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle


def match_parameter_strides(model: nn.Module) -> list[RemovableHandle]:
    """Hook each parameter with a size-1 dimension so that its gradient arrives with the parameter's strides."""
    return [parameter.register_hook(partial(_with_strides, parameter.stride()))
            for parameter in model.parameters()
            if parameter.requires_grad and parameter.dim() > 1 and 1 in parameter.shape]


def _with_strides(strides: tuple[int, ...], grad: torch.Tensor) -> torch.Tensor:
    if grad.layout != torch.strided or grad.stride() == strides:
        return grad
    if any(size != 1 and ours != theirs for size, ours, theirs in zip(grad.shape, grad.stride(), strides)):
        return grad  # another layout indeed: autograd copies it into the parameter's
    return grad.as_strided(grad.shape, strides, grad.storage_offset())
