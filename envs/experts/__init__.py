"""Scripted experts for the robotics tasks (installed as ``sci_diffusion.envs.experts``)."""
