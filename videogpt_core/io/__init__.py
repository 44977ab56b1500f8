"""Files: videos and images read and written, written videos probed, files replaced atomically."""
