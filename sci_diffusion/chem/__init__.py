"""Molecules: data, graph featurization, the RDKit screening gate and chemistry metrics.

Needs the ``chem`` extra (RDKit, torch-geometric, pandas, qm9pack; molsets without deps).
Nothing here is imported by :mod:`sci_diffusion.core`. Submodules:

* :mod:`.datasets` — molecule data sets by name (``task.data.dataset``), one module each.
* :mod:`.data` — QM9 (fixed hash-ordered split) and MOSES loaders.
* :mod:`.molfiles` — SMILES/SDF files (one suffix list, one record reader) read by everyone;
  bad records are reported instead of crashing.
* :mod:`.sanitize` — RDKit sanitization and error-log capture, one way for readers and gate.
* :mod:`.parallel` — the one process pool for per-molecule RDKit work (gate, plausibility).
* :mod:`.featurize` — kekulized molecular graphs (atom types, charges, bond types) with a
  checksummed on-disk cache.
* :mod:`.gate` — the screening gate (:func:`~.gate.run_gate`, :class:`~.gate.GateConfig`).
* :mod:`.outputs`, :mod:`.screen` — candidates/rejected/metrics files; ``sci-diffusion screen``.
* :mod:`.metrics`, :mod:`.moses_metrics` — validity (literature and strict), uniqueness,
  novelty, EDM stability, MOSES metrics.
* :mod:`.structures` — QM9 3D graphs: the SMILES's graph at the DFT geometry, aligned by
  isomorphism.
* :mod:`.reconstruct` — molecules from 3D coordinates (RDKit ``DetermineBonds``, EDM's
  distance table).
* :mod:`.plausibility` — 3D plausibility checks (PoseBusters' molecule checks), used by the
  gate's ``geometry_3d`` check.
"""
