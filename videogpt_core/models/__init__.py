"""The models: configs, the VQ-VAE codec, the GPT prior and its decoding copy, and their folders on disk."""
