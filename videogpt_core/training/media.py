"""Videos in TensorBoard: a row of animated GIFs, written as the image summary SummaryWriter.add_video makes."""
from __future__ import annotations

import io

import torch

MEDIA_VIDEOS = 4  # videos shown per TensorBoard media entry


def write_video_summary(writer, tag: str, videos: torch.Tensor, step: int, fps: int = 4) -> None:
    """Log videos (B, 3, T, H, W) in [-0.5, 0.5] to TensorBoard as one animated GIF (a grid row).

    SummaryWriter.add_video needs `moviepy.editor`, which moviepy 2 removed (it then logs nothing),
    so the GIF is encoded with Pillow and written as the same image summary add_video produces."""
    from PIL import Image
    from torch.utils.tensorboard.summary import Summary

    frames = ((videos.detach().float().cpu() + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    frames = torch.cat(list(frames), dim=-1)  # videos side by side: (3, T, H, B*W)
    frames = frames.permute(1, 2, 3, 0).numpy()  # (T, H, W, 3)
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue())
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
