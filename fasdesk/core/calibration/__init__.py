"""Calibration recordings, scoring and camera profiles."""
