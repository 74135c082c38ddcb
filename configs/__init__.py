"""Installed as sci_diffusion.configs."""
