"""Patch-wise EpiGRAF training."""
