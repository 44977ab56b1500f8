"""Sampling: user inputs checked, clips encoded, codes drawn window by window and decoded into video."""
