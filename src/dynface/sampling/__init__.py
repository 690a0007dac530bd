"""Guided posterior sampling (paper Eq. 5, 7, 12, 15; Algorithm 1) on top of a noise-prediction network."""
