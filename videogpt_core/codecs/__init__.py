"""Codecs compared: a clip through several VQ-VAEs and a classical baseline, scored and drawn side by side."""
