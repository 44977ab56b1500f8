"""An independent, functional re-implementation of the reference VideoGPT forward passes (inference only).

Written from the facts in the reference notes, not from videogpt_core: every function reads a REFERENCE
state dict (reference key names) directly and spells the arithmetic out (explicit matmuls, a dense causal
mask, float32 softmax), so the converter's parity tests compare two implementations that share no code.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

StateDict = dict[str, torch.Tensor]

BN_EPS = 1e-5  # nn.BatchNorm3d default
LN_EPS = 1e-5  # nn.LayerNorm default (frame encoder)
VQVAE_ATTN_HEADS = 2  # the reference's AxialBlock always has two heads


# ------------------------------------------------------------------------------------------------ helpers


def count_indices(state: StateDict, pattern: str) -> int:
    """How many distinct integers fill the `(\\d+)` group of `pattern` over the state dict's keys."""
    found = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return len(found)


def halving_strides(downsample) -> list[tuple[int, int, int]]:
    """One (T, H, W) stride per strided conv: 2 on the axes that still need halving, 1 on the others."""
    remaining = [int(round(math.log2(d))) for d in downsample]
    strides = []
    while max(remaining) > 0:
        strides.append(tuple(2 if r > 0 else 1 for r in remaining))
        remaining = [r - 1 for r in remaining]
    return strides


def same_pad(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """Pad each of (T, H, W) by k - s in total, the odd one in front."""
    pad_last_axis_first = []
    for k, s in reversed(list(zip(kernel, stride))):
        total = k - s
        pad_last_axis_first += [total // 2 + total % 2, total // 2]
    return F.pad(x, pad_last_axis_first)


def same_pad_conv3d(x, weight, bias, stride=(1, 1, 1)) -> torch.Tensor:
    return F.conv3d(same_pad(x, weight.shape[2:], stride), weight, bias, stride=stride)


def same_pad_conv_transpose3d(x, weight, bias, stride) -> torch.Tensor:
    kernel = weight.shape[2:]
    return F.conv_transpose3d(same_pad(x, kernel, stride), weight, bias, stride=stride,
                              padding=tuple(k - 1 for k in kernel))


def batch_norm_eval(x: torch.Tensor, state: StateDict, prefix: str) -> torch.Tensor:
    """BatchNorm3d with its running statistics, written out."""
    shape = (1, -1, 1, 1, 1)
    mean = state[prefix + "running_mean"].view(shape)
    var = state[prefix + "running_var"].view(shape)
    return (x - mean) / torch.sqrt(var + BN_EPS) * state[prefix + "weight"].view(shape) \
        + state[prefix + "bias"].view(shape)


def dense_attention(q, k, v, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over the last two axes; mask entries == 0 are hidden; softmax in float32."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask == 0, float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return torch.matmul(weights, v)


def split_heads(x: torch.Tensor, weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Project channels-last x (B, *grid, C) and split heads: (B, n_heads, *grid, d)."""
    y = torch.matmul(x, weight.t())
    y = y.reshape(*y.shape[:-1], n_heads, y.shape[-1] // n_heads)
    return y.movedim(-2, 1)


def merge_heads_and_project(a: torch.Tensor, state: StateDict, prefix: str) -> torch.Tensor:
    """(B, n_heads, *grid, d) -> (B, *grid, n_heads * d) -> fc."""
    a = a.movedim(1, -2)
    a = a.reshape(*a.shape[:-2], -1)
    return torch.matmul(a, state[prefix + "fc.weight"].t()) + state[prefix + "fc.bias"]


# ------------------------------------------------------------------------------------------------ VQ-VAE


def axial_block(x: torch.Tensor, state: StateDict, prefix: str) -> torch.Tensor:
    """x (B, C, T, H, W): the sum of full attentions along W, H and T, no position encodings."""
    h = x.permute(0, 2, 3, 4, 1)  # (B, T, H, W, C)
    total = 0
    # After splitting heads the tensor is (B, heads, T, H, W, d): T is axis 2, H 3, W 4.
    for name, axis in (("attn_w", 4), ("attn_h", 3), ("attn_t", 2)):
        p = f"{prefix}{name}."
        q = split_heads(h, state[p + "w_qs.weight"], VQVAE_ATTN_HEADS).movedim(axis, -2)
        k = split_heads(h, state[p + "w_ks.weight"], VQVAE_ATTN_HEADS).movedim(axis, -2)
        v = split_heads(h, state[p + "w_vs.weight"], VQVAE_ATTN_HEADS).movedim(axis, -2)
        out = dense_attention(q, k, v).movedim(-2, axis)
        total = total + merge_heads_and_project(out, state, p)
    return total.permute(0, 4, 1, 2, 3)


def attention_residual_block(x: torch.Tensor, state: StateDict, prefix: str) -> torch.Tensor:
    h = F.relu(batch_norm_eval(x, state, prefix + "block.0."))
    h = same_pad_conv3d(h, state[prefix + "block.2.conv.weight"], None)
    h = F.relu(batch_norm_eval(h, state, prefix + "block.3."))
    h = same_pad_conv3d(h, state[prefix + "block.5.conv.weight"], None)
    h = F.relu(batch_norm_eval(h, state, prefix + "block.6."))
    return x + axial_block(h, state, prefix + "block.8.")


def residual_stack(x: torch.Tensor, state: StateDict, prefix: str) -> torch.Tensor:
    n_blocks = count_indices(state, re.escape(prefix) + r"(\d+)\.block\.")
    for i in range(n_blocks):
        x = attention_residual_block(x, state, f"{prefix}{i}.")
    return F.relu(batch_norm_eval(x, state, f"{prefix}{n_blocks}."))


def vqvae_quantizer_input(state: StateDict, video: torch.Tensor, downsample, prefix: str = "") -> torch.Tensor:
    """video (B, 3, T, H, W) -> encoder output after pre_vq_conv (B, D, t, h, w)."""
    h = video
    for i, stride in enumerate(halving_strides(downsample)):
        p = f"{prefix}encoder.convs.{i}.conv."
        h = F.relu(same_pad_conv3d(h, state[p + "weight"], state[p + "bias"], stride))
    h = same_pad_conv3d(h, state[prefix + "encoder.conv_last.conv.weight"],
                        state[prefix + "encoder.conv_last.conv.bias"])
    h = residual_stack(h, state, prefix + "encoder.res_stack.")
    return same_pad_conv3d(h, state[prefix + "pre_vq_conv.conv.weight"], state[prefix + "pre_vq_conv.conv.bias"])


def nearest_codes(z: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """z (B, D, t, h, w) -> argmin over codes of the squared distance, (B, t, h, w)."""
    flat = z.permute(0, 2, 3, 4, 1).reshape(-1, z.shape[1])
    distances = (flat[:, None, :] - embeddings[None, :, :]).square().sum(-1)  # (N, n_codes)
    return distances.argmin(1).view(z.shape[0], *z.shape[2:])


def vqvae_encode(state: StateDict, video: torch.Tensor, downsample, prefix: str = "") -> torch.Tensor:
    z = vqvae_quantizer_input(state, video, downsample, prefix)
    return nearest_codes(z, state[prefix + "codebook.embeddings"])


def vqvae_decode(state: StateDict, codes: torch.Tensor, downsample, prefix: str = "") -> torch.Tensor:
    """codes (B, t, h, w) -> video (B, 3, T, H, W)."""
    h = state[prefix + "codebook.embeddings"][codes].permute(0, 4, 1, 2, 3)  # (B, D, t, h, w)
    h = same_pad_conv3d(h, state[prefix + "post_vq_conv.conv.weight"], state[prefix + "post_vq_conv.conv.bias"])
    h = residual_stack(h, state, prefix + "decoder.res_stack.")
    strides = halving_strides(downsample)
    for i, stride in enumerate(strides):
        p = f"{prefix}decoder.convts.{i}.convt."
        h = same_pad_conv_transpose3d(h, state[p + "weight"], state[p + "bias"], stride)
        if i < len(strides) - 1:
            h = F.relu(h)
    return h


# ------------------------------------------------------------------------------------------------ frame ResNet


def channel_layer_norm(x: torch.Tensor, state: StateDict, prefix: str) -> torch.Tensor:
    """nn.LayerNorm over the channels of (B, C, T, H, W), computed in float32."""
    xf = x.float().movedim(1, -1)
    mean = xf.mean(-1, keepdim=True)
    var = (xf - mean).square().mean(-1, keepdim=True)
    y = (xf - mean) / torch.sqrt(var + LN_EPS) * state[prefix + "weight"] + state[prefix + "bias"]
    return y.movedim(-1, 1).to(x.dtype)


def resnet_block(x: torch.Tensor, state: StateDict, prefix: str, stride) -> torch.Tensor:
    h = F.conv3d(x, state[prefix + "conv1.weight"], stride=stride, padding=1)
    h = F.relu(channel_layer_norm(h, state, prefix + "bnr1.norm.norm."))
    h = F.conv3d(h, state[prefix + "conv2.weight"], padding=1)
    h = F.relu(channel_layer_norm(h, state, prefix + "bnr2.norm.norm."))  # bnr2 has its own ReLU
    if prefix + "proj_conv.weight" in state:
        shortcut = channel_layer_norm(F.conv3d(x, state[prefix + "proj_conv.weight"], stride=stride),
                                      state, prefix + "proj_bnr.norm.norm.")  # no ReLU on the shortcut
    else:
        shortcut = x
    return F.relu(h + shortcut)


def frame_resnet(state: StateDict, frames: torch.Tensor, prefix: str = "resnet.") -> torch.Tensor:
    """frames (B, 3, K, H, W) -> features (B, K, H/4, W/4, C): ResNet-34 with spatial stride 4."""
    x = F.conv3d(frames, state[prefix + "stem.0.weight"], padding=1)
    x = F.relu(channel_layer_norm(x, state, prefix + "stem.1.norm.norm."))
    # The overall stride (1, 4, 4) is spent as (1, 2, 2) in groups 2 and 3.
    for group, stride in zip(range(1, 5), [(1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 1, 1)]):
        p = f"{prefix}group{group}."
        x = resnet_block(x, state, p + "start_block.", stride)
        for j in range(count_indices(state, re.escape(p) + r"blocks\.(\d+)\.")):
            x = resnet_block(x, state, f"{p}blocks.{j}.", (1, 1, 1))
    return x.permute(0, 2, 3, 4, 1)


# ------------------------------------------------------------------------------------------------ prior


def broadcast_position_embedding(state: StateDict, prefix: str, shape) -> torch.Tensor:
    """(*shape, dim): per axis a table (n_i, dim/3) broadcast over the grid, concatenated along channels."""
    parts = []
    for i, n in enumerate(shape):
        table = state[f"{prefix}emb.d_{i}"]
        view = [1] * len(shape) + [table.shape[-1]]
        view[i] = n
        parts.append(table.reshape(view).expand(*shape, table.shape[-1]))
    return torch.cat(parts, dim=-1)


def prior_layer_norm(x: torch.Tensor, state: StateDict, prefix: str, class_onehot) -> torch.Tensor:
    """The reference's LayerNorm: (x - mean) * (1e-5 + rsqrt(var)) * g + b in float32; class-conditional
    g = 1 + w(onehot), b = wb(onehot)."""
    if prefix + "g" in state:
        g, b = state[prefix + "g"], state[prefix + "b"]
    else:
        broadcast = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        g = (1 + torch.matmul(class_onehot, state[prefix + "w.weight"].t())).reshape(broadcast)
        b = torch.matmul(class_onehot, state[prefix + "wb.weight"].t()).reshape(broadcast)
    xf = x.float()
    mean = xf.mean(-1, keepdim=True)
    var = (xf - mean).square().mean(-1, keepdim=True)
    return ((xf - mean) * (1e-5 + var.rsqrt()) * g + b).to(x.dtype)


def full_attention(q_in: torch.Tensor, kv_in: torch.Tensor, state: StateDict, prefix: str, n_heads: int,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """q_in (B, *grid_q, Cq), kv_in (B, *grid_kv, Ckv): grids flattened in raster order, then attention."""
    batch, grid = q_in.shape[0], q_in.shape[1:-1]
    q = split_heads(q_in.reshape(batch, -1, q_in.shape[-1]), state[prefix + "w_qs.weight"], n_heads)
    kv = kv_in.reshape(batch, -1, kv_in.shape[-1])
    k = split_heads(kv, state[prefix + "w_ks.weight"], n_heads)
    v = split_heads(kv, state[prefix + "w_vs.weight"], n_heads)
    out = merge_heads_and_project(dense_attention(q, k, v, mask), state, prefix)  # (B, Lq, Cq)
    return out.reshape(batch, *grid, out.shape[-1])


def gelu2(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def prior_logits(state: StateDict, codes: torch.Tensor, n_heads: int, frames: torch.Tensor | None = None,
                 labels: torch.Tensor | None = None) -> torch.Tensor:
    """Teacher-forced logits (B, t, h, w, n_codes) of a reference prior state dict (with its `vqvae.` part)."""
    batch, grid = codes.shape[0], tuple(codes.shape[1:])
    x = torch.matmul(state["vqvae.codebook.embeddings"][codes], state["fc_in.weight"].t())  # (B, t, h, w, d)
    dim = x.shape[-1]
    # Right shift in raster order with the learned start vector in front.
    flat = x.reshape(batch, -1, dim)
    flat = torch.cat([state["attn_stack.right_shift.sos"].expand(batch, 1, dim), flat[:, :-1]], dim=1)
    x = flat.reshape(batch, *grid, dim) + broadcast_position_embedding(state, "attn_stack.pos_embd.", grid)

    class_onehot = None
    if "norm.w.weight" in state:
        class_onehot = F.one_hot(labels, state["norm.w.weight"].shape[1]).float()
    frame_features = None
    if "cond_pos_embd.emb.d_0" in state:
        n_cond_frames = state["cond_pos_embd.emb.d_0"].shape[0]
        features = frame_resnet(state, frames[:, :, :n_cond_frames])
        frame_features = features + broadcast_position_embedding(state, "cond_pos_embd.", features.shape[1:4])

    for i in range(count_indices(state, r"attn_stack\.attn_nets\.(\d+)\.")):
        p = f"attn_stack.attn_nets.{i}."
        h = prior_layer_norm(x, state, p + "pre_attn_norm.", class_onehot)
        x = x + full_attention(h, h, state, p + "attn.", n_heads, mask=state[p + "attn.attn.mask"])
        if frame_features is not None:
            h = prior_layer_norm(x, state, p + "pre_enc_norm.", class_onehot)
            x = x + full_attention(h, frame_features, state, p + "enc_attn.", n_heads)
        h = prior_layer_norm(x, state, p + "pre_fc_norm.", class_onehot)
        h = gelu2(torch.matmul(h, state[p + "fc_block.0.weight"].t()) + state[p + "fc_block.0.bias"])
        x = x + torch.matmul(h, state[p + "fc_block.2.weight"].t()) + state[p + "fc_block.2.bias"]
    x = prior_layer_norm(x, state, "norm.", class_onehot)
    return torch.matmul(x, state["fc_out.weight"].t())
