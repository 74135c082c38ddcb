"""Molecules: data, graph featurization, the RDKit screening gate and chemistry metrics.

Needs the ``chem`` extra (RDKit, torch-geometric, pandas, qm9pack; molsets without deps).
Nothing here is imported by :mod:`sci_diffusion.core`.
"""
