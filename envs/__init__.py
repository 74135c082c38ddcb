"""Installed as sci_diffusion.envs."""
