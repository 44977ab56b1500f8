"""The command line: `videogpt ...` (main.py) and the sample, reconstruct and export-space commands."""
