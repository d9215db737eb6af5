"""Priors over token grids: training losses and samplers."""
