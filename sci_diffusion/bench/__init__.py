"""Benchmarks behind `sci-diffusion bench`."""
