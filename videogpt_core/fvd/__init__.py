"""Frechet Video Distance with the standard Kinetics-400 Inception-I3D, computed offline."""
