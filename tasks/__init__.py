"""Installed as sci_diffusion.tasks."""
