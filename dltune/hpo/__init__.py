"""Hyperparameter search over training runs with Ray Tune."""
