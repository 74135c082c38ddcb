"""Trainer, checkpoints, run directories and model cards."""
