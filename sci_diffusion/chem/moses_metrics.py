"""MOSES benchmark metrics, re-implemented with RDKit, numpy and torch.

Definitions follow the MOSES paper (Polykovskiy et al., "Molecular Sets (MOSES): a
benchmarking platform for molecular generation models", Frontiers in Pharmacology 2020) as its
reference code computes them (``moses/metrics/metrics.py`` and ``moses/metrics/utils.py`` of
the ``molsets`` 0.3.1 package, whose metrics module no longer imports with pandas >= 2). Only
MOSES's data files are read from the installed package: the SMILES splits and the MCF and PAINS
SMARTS tables.

FCD (Fréchet ChemNet Distance; Preuer et al., "Fréchet ChemNet Distance: A Metric for
Generative Models for Molecules in Drug Discovery", J. Chem. Inf. Model. 2018) uses the ChemNet
weights that ship inside the ``fcd`` package's wheel (nothing is downloaded), loaded with
``torch.load(..., weights_only=True)``; see :func:`load_chemnet` and :func:`fcd_stats`.
The property Wasserstein distances (logP, SA, QED, weight) are not part of this module.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import Chem, rdBase
from rdkit.Chem import rdFingerprintGenerator, rdSubstructLibrary
from rdkit.Chem.Scaffolds import MurckoScaffold

from sci_diffusion.io.files import atomic_open
from sci_diffusion.io.progress import Progress

from ._deprecated import renamed
from .data import load_moses, moses_dir, moses_source_file

__all__ = [
    "CHEMNET_DIM",
    "CHEMNET_FILE",
    "MOSES_ALLOWED_ATOMS",
    "FrechetStats",
    "ReferenceStats",
    "chemnet_activations",
    "chemnet_weights_path",
    "counts_cosine_similarity",
    "fcd_stats",
    "fraction_passes_filters",
    "fragment_counts",
    "frechet_chemnet_distance",
    "frechet_distance",
    "frechet_stats",
    "internal_diversity",
    "load_chemnet",
    "load_fcd_stats",
    "load_moses_split",
    "load_reference_stats",
    "mol_passes_filters",
    "morgan_fingerprints",
    "moses_fcd_reference",
    "moses_filter_patterns",
    "moses_metrics",
    "moses_reference",
    "passes_filters",
    "reference_stats",
    "save_fcd_stats",
    "save_reference_stats",
    "scaffold_counts",
    "snn",
    "tanimoto_matrix",
]

MOSES_ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
"""Elements a molecule may contain to pass the MOSES filters (``mol_passes_filters``)."""

def _load_moses_split(split: str = "test") -> list[str]:
    return load_moses(split)


#: Old name: MOSES is read by :func:`sci_diffusion.chem.data.load_moses` (its only loader).
load_moses_split = renamed(
    "sci_diffusion.chem.moses_metrics.load_moses_split", _load_moses_split,
    "sci_diffusion.chem.data.load_moses (default split 'train')",
)  # fmt: skip


def _get_mol(smiles_or_mol: str | Chem.Mol | None) -> Chem.Mol | None:
    """MOSES's ``get_mol``: parse and sanitize a SMILES (None if that fails); pass Mols through."""
    if smiles_or_mol is None or isinstance(smiles_or_mol, Chem.Mol):
        return smiles_or_mol
    if len(smiles_or_mol) == 0:
        return None
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles_or_mol)
        if mol is None:
            return None
        try:
            Chem.SanitizeMol(mol)
        except ValueError:
            return None
    return mol


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def moses_filter_patterns() -> tuple[Chem.Mol, ...]:
    """The MCF (22) and PAINS (480) SMARTS that MOSES filters on, from its ``metrics`` folder.

    ``mcf.csv`` has a ``names,smarts`` header; ``wehi_pains.csv`` has ``smarts,name`` rows
    without one (SMARTS padded with spaces, stripped here).
    """
    folder = moses_dir() / "metrics"
    with open(folder / "mcf.csv", newline="") as f:
        smarts = [row["smarts"] for row in csv.DictReader(f)]
    with open(folder / "wehi_pains.csv", newline="") as f:
        smarts += [row[0] for row in csv.reader(f) if row]
    patterns = tuple(Chem.MolFromSmarts(s.strip()) for s in smarts)
    if any(p is None for p in patterns):
        raise ValueError("a MOSES filter SMARTS did not parse")
    return patterns


def _passes_simple_rules(mol: Chem.Mol, allowed: frozenset[str]) -> bool:
    """The MOSES rules other than the SMARTS: rings, charges, elements, SMILES round trip."""
    if any(len(ring) >= 8 for ring in mol.GetRingInfo().AtomRings()):
        return False
    if any(atom.GetFormalCharge() != 0 for atom in mol.GetAtoms()):
        return False
    if any(atom.GetSymbol() not in allowed for atom in mol.GetAtoms()):
        return False
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    with rdBase.BlockLogs():
        return len(smiles) > 0 and Chem.MolFromSmiles(smiles) is not None


def mol_passes_filters(
    mol: str | Chem.Mol | None, allowed: frozenset[str] = MOSES_ALLOWED_ATOMS
) -> bool:
    """MOSES's ``mol_passes_filters``: the rules its train and test sets were filtered with.

    A molecule passes when it parses and sanitizes, has no ring of 8 or more atoms, no atom
    with a formal charge, only elements from ``allowed`` (C, N, S, O, F, Cl, Br, H), matches
    none of the MCF and PAINS SMARTS (matched on the molecule with explicit hydrogens), and its
    non-isomeric SMILES is non-empty and parses again. About 7-15 ms per drug-like molecule:
    use :func:`fraction_passes_filters` for many.
    """
    mol = _get_mol(mol)
    if mol is None or not _passes_simple_rules(mol, allowed):
        return False
    with_h = Chem.AddHs(mol)
    return not any(with_h.HasSubstructMatch(p) for p in moses_filter_patterns())


def passes_filters(
    mols: Sequence[str | Chem.Mol | None], allowed: frozenset[str] = MOSES_ALLOWED_ATOMS
) -> np.ndarray:
    """:func:`mol_passes_filters` for many molecules at once, about 4-6x faster.

    The SMARTS are searched with an RDKit ``SubstructLibrary``, whose pattern-fingerprint screen
    skips molecules that cannot match; it agreed with testing one by one on all of 15,000 MOSES
    and QM9 molecules tried. Molecules must be SMILES or sanitized Mols.

    Returns
    -------
    numpy.ndarray
        (len(mols),) bool.
    """
    parsed = [_get_mol(m) for m in mols]
    keep = [i for i, m in enumerate(parsed) if m is not None and _passes_simple_rules(m, allowed)]
    library = rdSubstructLibrary.SubstructLibrary(
        rdSubstructLibrary.MolHolder(), rdSubstructLibrary.PatternHolder()
    )
    for i in keep:
        library.AddMol(Chem.AddHs(parsed[i]))
    hits: set[int] = set()
    if keep:
        for pattern in moses_filter_patterns():
            hits.update(library.GetMatches(pattern, maxResults=len(keep), useChirality=False))
    out = np.zeros(len(mols), dtype=bool)
    out[[i for j, i in enumerate(keep) if j not in hits]] = True
    return out


def fraction_passes_filters(mols: Sequence[str | Chem.Mol | None]) -> float:
    """MOSES "Filters": the fraction of molecules that pass :func:`mol_passes_filters`."""
    if len(mols) == 0:
        raise ValueError("no molecules to evaluate")
    return float(passes_filters(mols).mean())


# --------------------------------------------------------------------------------------------
# Fingerprints and Tanimoto similarity
# --------------------------------------------------------------------------------------------


def morgan_fingerprints(
    mols: Sequence[Chem.Mol], radius: int = 2, n_bits: int = 1024
) -> np.ndarray:
    """Morgan bit fingerprints as a (n, n_bits) uint8 0/1 matrix (MOSES: radius 2, 1024 bits).

    RDKit's Morgan generator gives the same bits as the ``GetMorganFingerprintAsBitVect(mol,
    2, nBits=1024)`` that MOSES calls.
    """
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(mols), n_bits), dtype=np.uint8)
    for i, mol in enumerate(mols):
        if mol is None:
            raise ValueError(f"molecule {i} is None; fingerprint valid molecules only")
        out[i] = generator.GetFingerprintAsNumPy(mol)
    return out


_BF16_EXACT_MAX = 256  # bfloat16 holds every integer up to 256 exactly


def _use_bf16(bf16: bool | None, device: torch.device, *fps: np.ndarray) -> bool:
    """Whether to multiply in bfloat16: exact when no fingerprint sets more than 256 bits.

    ``bf16=None`` chooses: CUDA, or a CPU on which oneDNN has bfloat16 kernels.
    """
    exact = all(len(f) == 0 or int(f.sum(1).max()) <= _BF16_EXACT_MAX for f in fps)
    if bf16 is not None:
        if bf16 and not exact:
            raise ValueError(f"bf16 products are exact only up to {_BF16_EXACT_MAX} set bits")
        return bf16
    if not exact:
        return False
    if device.type == "cuda":
        return True
    try:
        return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _tanimoto_block(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Tanimoto similarity (float32) of every row of ``a`` with every row of ``b``.

    ``a`` and ``b`` hold 0/1 bits as float32 or bfloat16; the intersection counts are exact
    either way (see :func:`_use_bf16`). Two all-zero fingerprints have similarity 1, as in MOSES
    (it sets the 0/0 NaN to 1).
    """
    inter = (a @ b.T).float()
    union = (a.sum(1, keepdim=True, dtype=torch.float32) + b.sum(1, dtype=torch.float32)).sub_(
        inter
    )
    return inter.div_(union).nan_to_num_(nan=1.0)


def _blocks(n: int, size: int) -> Iterable[slice]:
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def _bits(fps: np.ndarray, rows: slice, device: torch.device, bf16: bool) -> torch.Tensor:
    dtype = torch.bfloat16 if bf16 else torch.float32
    return torch.from_numpy(np.ascontiguousarray(fps[rows])).to(device, dtype)


def tanimoto_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarity between all rows of two 0/1 fingerprint matrices: (len(a), len(b))."""
    cpu, full = torch.device("cpu"), slice(None)
    return _tanimoto_block(_bits(a, full, cpu, False), _bits(b, full, cpu, False)).numpy()


def snn(
    gen_fps: np.ndarray,
    ref_fps: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    block_size: int = 2048,
    bf16: bool | None = None,
) -> float:
    """Similarity to nearest neighbour (MOSES ``SNNMetric``).

    ``mean over generated x of max over reference y of Tanimoto(x, y)`` on Morgan fingerprints.
    Computed in (block_size, 8 * block_size) tiles of matrix products, so memory stays bounded
    for 10k x 176k comparisons.

    Parameters
    ----------
    gen_fps, ref_fps
        0/1 fingerprint matrices, (n_gen, n_bits) and (n_ref, n_bits).
    device
        Torch device for the products (``"cuda"`` is much faster on large sets).
    block_size
        Generated rows per tile.
    bf16
        Multiply in bfloat16 (exact for fingerprints with at most 256 bits set, several times
        faster where supported); None decides from the device and the fingerprints.
    """
    device = torch.device(device)
    low = _use_bf16(bf16, device, gen_fps, ref_fps)
    best = torch.zeros(len(gen_fps), dtype=torch.float32, device=device)
    for r in _blocks(len(ref_fps), 8 * block_size):
        ref = _bits(ref_fps, r, device, low)
        for g in _blocks(len(gen_fps), block_size):
            sims = _tanimoto_block(_bits(gen_fps, g, device, low), ref)
            best[g] = torch.maximum(best[g], sims.max(dim=1).values)
    return float(best.double().mean())


def internal_diversity(
    fps: np.ndarray,
    p: int = 1,
    *,
    device: str | torch.device = "cpu",
    block_size: int = 2048,
    bf16: bool | None = None,
) -> float:
    """Internal diversity IntDiv_p (MOSES ``internal_diversity``).

    ``1 - mean_x (mean_y T(x, y)^p)^(1/p)`` over all ordered pairs of the generated set,
    self-pairs and duplicates included; ``p=1`` is IntDiv1, ``p=2`` is IntDiv2. ``device``,
    ``block_size`` and ``bf16`` as for :func:`snn`.
    """
    device = torch.device(device)
    low = _use_bf16(bf16, device, fps)
    totals = torch.zeros(len(fps), dtype=torch.float64, device=device)
    for r in _blocks(len(fps), 4 * block_size):
        ref = _bits(fps, r, device, low)
        for g in _blocks(len(fps), block_size):
            totals[g] += _tanimoto_block(_bits(fps, g, device, low), ref).pow(p).sum(1).double()
    return float(1 - ((totals / len(fps)) ** (1 / p)).mean())


# --------------------------------------------------------------------------------------------
# Fragments and scaffolds
# --------------------------------------------------------------------------------------------


def fragment_counts(mols: Iterable[Chem.Mol]) -> Counter[str]:
    """BRICS fragment SMILES counted over molecules (MOSES ``compute_fragments``).

    Each molecule is cut with ``FragmentOnBRICSBonds`` and every piece of the resulting
    SMILES (dummy atoms such as ``[1*]`` included) is counted.
    """
    counts: Counter[str] = Counter()
    for mol in mols:
        counts.update(Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split("."))
    return counts


def _scaffold(mol: Chem.Mol, min_rings: int) -> str | None:
    try:
        scaffold = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    smiles = Chem.MolToSmiles(scaffold)
    if smiles == "" or scaffold.GetRingInfo().NumRings() < min_rings:
        return None
    return smiles


def scaffold_counts(mols: Iterable[Chem.Mol], min_rings: int = 2) -> Counter[str]:
    """Bemis-Murcko scaffold SMILES counted over molecules (MOSES ``compute_scaffolds``).

    As in MOSES's code, scaffolds with fewer than ``min_rings = 2`` rings (and empty scaffolds
    of acyclic molecules) are not counted; the paper's text does not mention this cut.
    """
    found = (_scaffold(mol, min_rings) for mol in mols)
    return Counter(s for s in found if s is not None)


def counts_cosine_similarity(ref: Counter[str], gen: Counter[str]) -> float:
    """Cosine similarity of two count vectors over the union of their keys (MOSES Frag, Scaf).

    NaN when either is empty, as in MOSES's ``cos_similarity``.
    """
    if not ref or not gen:
        return float("nan")
    keys = list(ref.keys() | gen.keys())
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    g = np.array([gen.get(k, 0) for k in keys], dtype=np.float64)
    return float(r @ g / (np.linalg.norm(r) * np.linalg.norm(g)))


# --------------------------------------------------------------------------------------------
# FCD: Fréchet ChemNet Distance
# --------------------------------------------------------------------------------------------

CHEMNET_FILE = "ChemNet_v0.13_pretrained.pt"
"""ChemNet's weights as the ``fcd`` package ships them inside its wheel."""

CHEMNET_DIM = 512
"""Width of the activations FCD compares (ChemNet's last LSTM layer, the penultimate layer)."""


def _fcd_utils() -> Any:
    try:
        from fcd import utils
    except ModuleNotFoundError as err:  # pragma: no cover - the chem extra installs it
        raise ModuleNotFoundError(
            "FCD needs the 'fcd' package (ChemNet's weights ship in its wheel): "
            "pip install 'sci-diffusion[chem]'"
        ) from err
    return utils


def chemnet_weights_path() -> Path:
    """Where the installed ``fcd`` package keeps ChemNet's weights (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("fcd")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("FCD needs the 'fcd' package: pip install 'sci-diffusion[chem]'")
    return Path(next(iter(spec.submodule_search_locations))) / CHEMNET_FILE


def load_chemnet(path: str | Path | None = None) -> torch.nn.Module:
    """ChemNet (Preuer et al. 2018) as the ``fcd`` package builds it, in eval mode on the CPU.

    The weights file holds, per layer, a state dict and the layer's settings (plain tensors,
    numbers, strings); it is read with ``torch.load(weights_only=True)``, which refuses any
    pickled object other than those, so loading runs no code from the file. (``fcd``'s own
    ``load_ref_model`` calls ``torch.load`` without the flag.) The network is then assembled
    by ``fcd.utils.load_imported_model``: two 1-D convolutions (SELU, width 32, kernel 4,
    stride 2), an LSTM of width 128 and one of width 512, each run over the reversed sequence;
    the model's output is the 512-wide last LSTM's state at the last step, the penultimate layer
    of the original Keras ChemNet (its output layer is not included).

    Parameters
    ----------
    path
        A ChemNet file in ``fcd``'s format; None for the one ``fcd`` ships
        (:func:`chemnet_weights_path`).
    """
    utils = _fcd_utils()
    config = torch.load(
        Path(path) if path is not None else chemnet_weights_path(),
        map_location="cpu",
        weights_only=True,
    )
    return utils.load_imported_model(config).eval()


@functools.lru_cache(maxsize=2)
def _chemnet_on(device: torch.device) -> torch.nn.Module:
    return load_chemnet().to(device)


def _fcd_smiles(smiles: str | Chem.Mol | None) -> str:
    """The SMILES that ChemNet reads: RDKit canonical, as ``fcd_torch`` (``canonize=True``)."""
    mol = _get_mol(smiles)
    if mol is None:
        raise ValueError(f"ChemNet needs valid molecules; {smiles!r} does not parse")
    return Chem.MolToSmiles(mol)


def chemnet_activations(
    smiles: Sequence[str | Chem.Mol],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
) -> np.ndarray:
    """ChemNet's penultimate-layer activations, one row per molecule: (n, 512) float32.

    As MOSES's ``fcd_torch.FCD`` computes them: every molecule is written as its RDKit
    canonical SMILES (an invalid one raises ``ValueError``), tokenized over ChemNet's 35
    symbols (``Cl``, ``Br``, ``Si`` are one symbol each; symbols outside the vocabulary, e.g.
    the ``i`` of ``[Li]``, become the unknown symbol), an end symbol ``.`` is appended, and the
    one-hot sequence, divided by 35 and zero-padded to 350 positions, goes through
    :func:`load_chemnet`'s network. The encoding is ``fcd``'s (``fcd.utils.SmilesDataset``); it
    equals ``fcd_torch``'s for SMILES of vocabulary symbols shorter than 350 characters, i.e.
    for all of MOSES and QM9. A set with a longer SMILES is padded to its length (``fcd`` warns
    that this changes the activations; ``fcd_torch`` truncates instead).

    One progress line (or bar) while the network runs: 3-5 ms per molecule on one CPU core.
    """
    canonical = [_fcd_smiles(s) for s in smiles]
    out = np.zeros((len(canonical), CHEMNET_DIM), dtype=np.float32)
    if not canonical:
        return out
    device = torch.device(device)
    model = _chemnet_on(device)
    dataset = _fcd_utils().SmilesDataset(canonical)
    with (
        torch.inference_mode(),
        Progress(len(canonical), f"ChemNet activations ({device.type})", unit="mol") as bar,
    ):
        for rows in _blocks(len(canonical), batch_size):
            onehot = np.stack([dataset[i] for i in range(rows.start, rows.stop)])
            x = torch.from_numpy(onehot).to(device, torch.float32).transpose(1, 2)
            out[rows] = model(x).float().cpu().numpy()
            bar.update(rows.stop - rows.start)
    return out


@dataclass(frozen=True)
class FrechetStats:
    """Mean and covariance of ChemNet activations of a set of molecules (MOSES's FCD ``precalc``).

    Attributes
    ----------
    mu
        (512,) float64 mean.
    sigma
        (512, 512) float64 covariance (``np.cov``: divided by n - 1).
    n
        Number of molecules.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def frechet_stats(activations: np.ndarray) -> FrechetStats:
    """:class:`FrechetStats` of an (n, d) activation matrix; n must be at least 2."""
    if len(activations) < 2:
        raise ValueError(f"FCD needs at least 2 molecules, got {len(activations)}")
    acts = np.asarray(activations, dtype=np.float64)
    return FrechetStats(acts.mean(0), np.cov(acts, rowvar=False), len(acts))


def fcd_stats(
    smiles: Sequence[str | Chem.Mol],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
) -> FrechetStats:
    """:class:`FrechetStats` of the ChemNet activations of ``smiles`` (all must be valid)."""
    return frechet_stats(chemnet_activations(smiles, device=device, batch_size=batch_size))


def frechet_distance(a: FrechetStats, b: FrechetStats) -> float:
    """Fréchet distance of two Gaussians: ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.

    ``tr (S_a S_b)^(1/2)`` is computed as the sum of the square roots of the eigenvalues of the
    symmetric ``S_a^(1/2) S_b S_a^(1/2)`` (same eigenvalues as ``S_a S_b``; round-off negatives
    clipped to 0), so rank-deficient covariances (fewer molecules than 512) need no ``eps``
    regularization; agrees with ``fcd``'s ``scipy.linalg.sqrtm`` version to within round-off.
    """
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise ValueError(f"statistics of different widths: {a.mu.shape} and {b.mu.shape}")
    values, vectors = np.linalg.eigh(a.sigma)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = root_a @ b.sigma @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * trace_root)


def frechet_chemnet_distance(
    generated: Sequence[str | Chem.Mol] | FrechetStats,
    reference: Sequence[str | Chem.Mol] | FrechetStats,
    *,
    device: str | torch.device = "cpu",
) -> float:
    """FCD between two sets of valid molecules (SMILES, Mols or precomputed statistics)."""
    gen = generated if isinstance(generated, FrechetStats) else fcd_stats(generated, device=device)
    ref = reference if isinstance(reference, FrechetStats) else fcd_stats(reference, device=device)
    return frechet_distance(gen, ref)


def save_fcd_stats(stats: FrechetStats, path: str | Path) -> None:
    """Write :class:`FrechetStats` to an ``.npz`` file (no pickle; written atomically)."""
    with atomic_open(Path(path), "wb") as handle:
        np.savez(handle, mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n))


def load_fcd_stats(path: str | Path) -> FrechetStats:
    """Read statistics written by :func:`save_fcd_stats` (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as data:
        return FrechetStats(data["mu"], data["sigma"], int(data["n"]))


@functools.lru_cache(maxsize=4)
def moses_fcd_reference(
    split: str = "test",
    cache_dir: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
) -> FrechetStats:
    """ChemNet statistics of a MOSES split (``test``: FCD/Test, ``test_scaffolds``: FCD/TestSF).

    As MOSES's ``compute_intermediate_statistics``: all molecules of the split, canonicalized.
    About 15 minutes per split on one loaded CPU core (176,074 and 176,225 molecules). With
    ``cache_dir`` the result is stored there once (2 MB ``.npz``), keyed by the split file's
    digest, the ChemNet file's digest and the RDKit version (canonical SMILES feed ChemNet).
    """
    if cache_dir is None:
        return fcd_stats(load_moses(split), device=device)
    digest = hashlib.sha256(moses_source_file(split).read_bytes()).hexdigest()[:16]
    weights = hashlib.sha256(chemnet_weights_path().read_bytes()).hexdigest()[:12]
    name = f"moses_{split}_chemnet_{digest}_{weights}_rdkit{rdBase.rdkitVersion}.npz"
    path = Path(cache_dir) / name
    if path.exists():
        return load_fcd_stats(path)
    stats = fcd_stats(load_moses(split), device=device)
    save_fcd_stats(stats, path)
    return stats


# --------------------------------------------------------------------------------------------
# Reference statistics and the entry point
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceStats:
    """What SNN, Frag and Scaf need from a reference set (MOSES's ``precalc``).

    Attributes
    ----------
    fingerprints
        (n, 1024) uint8 Morgan fingerprints.
    fragments
        BRICS fragment counts.
    scaffolds
        Scaffold counts (2 rings or more).
    chemnet
        ChemNet activation statistics for FCD, or None where not computed.
    """

    fingerprints: np.ndarray
    fragments: Counter[str]
    scaffolds: Counter[str]
    chemnet: FrechetStats | None = None


def reference_stats(
    smiles: Iterable[str | Chem.Mol],
    *,
    chemnet: bool = False,
    device: str | torch.device = "cpu",
) -> ReferenceStats:
    """Reference statistics of a set of SMILES (or Mols); unparsable entries are dropped.

    ``chemnet=True`` also computes the FCD statistics (:func:`fcd_stats`, on ``device``; about
    3-5 ms per molecule on a CPU core), which needs at least 2 valid molecules.
    """
    mols = [m for m in (_get_mol(s) for s in smiles) if m is not None]
    if not mols:
        raise ValueError("no valid reference molecule")
    return ReferenceStats(
        morgan_fingerprints(mols),
        fragment_counts(mols),
        scaffold_counts(mols),
        fcd_stats(mols, device=device) if chemnet else None,
    )


def save_reference_stats(stats: ReferenceStats, path: str | Path) -> None:
    """Write reference statistics to an ``.npz`` file (no pickle; written atomically)."""
    chemnet = {}
    if stats.chemnet is not None:
        chemnet = {
            "chemnet_mu": stats.chemnet.mu,
            "chemnet_sigma": stats.chemnet.sigma,
            "chemnet_n": np.int64(stats.chemnet.n),
        }
    with atomic_open(Path(path), "wb") as handle:
        np.savez_compressed(
            handle,
            fingerprints=np.packbits(stats.fingerprints, axis=1),
            n_bits=np.int64(stats.fingerprints.shape[1]),
            fragment_keys=np.array(list(stats.fragments), dtype=str),
            fragment_counts=np.array(list(stats.fragments.values()), dtype=np.int64),
            scaffold_keys=np.array(list(stats.scaffolds), dtype=str),
            scaffold_counts=np.array(list(stats.scaffolds.values()), dtype=np.int64),
            **chemnet,
        )


def _counter(keys: np.ndarray, counts: np.ndarray) -> Counter[str]:
    return Counter(dict(zip(keys.tolist(), counts.tolist(), strict=True)))


def load_reference_stats(path: str | Path) -> ReferenceStats:
    """Read reference statistics written by :func:`save_reference_stats`."""
    with np.load(path, allow_pickle=False) as data:
        n_bits = int(data["n_bits"])
        fps = np.unpackbits(data["fingerprints"], axis=1, count=n_bits)
        fragments = _counter(data["fragment_keys"], data["fragment_counts"])
        scaffolds = _counter(data["scaffold_keys"], data["scaffold_counts"])
        chemnet = None
        if "chemnet_mu" in data.files:
            chemnet = FrechetStats(
                data["chemnet_mu"], data["chemnet_sigma"], int(data["chemnet_n"])
            )
    return ReferenceStats(fps, fragments, scaffolds, chemnet)


@functools.lru_cache(maxsize=2)
def moses_reference(split: str = "test", cache_dir: str | Path | None = None) -> ReferenceStats:
    """Reference statistics of a MOSES split, computed once per process (and per cache).

    The full test set (176,074 molecules) takes about 4-5 minutes on one CPU core, mostly BRICS
    fragmentation and scaffolds; with ``cache_dir`` the result is stored there once, keyed by
    the split file's digest and the RDKit version, and later loads take about a second. The
    ChemNet statistics for FCD are not included (``chemnet`` is None): they are
    :func:`moses_fcd_reference`'s, cached separately.
    """
    if cache_dir is None:
        return reference_stats(load_moses(split))
    digest = hashlib.sha256(moses_source_file(split).read_bytes()).hexdigest()[:16]
    path = Path(cache_dir) / f"moses_{split}_reference_{digest}_rdkit{rdBase.rdkitVersion}.npz"
    if path.exists():
        return load_reference_stats(path)
    stats = reference_stats(load_moses(split))
    save_reference_stats(stats, path)
    return stats


def _unique_at(canonical: Sequence[str], k: int) -> float:
    """MOSES ``fraction_unique``: distinct among the first k valid canonical SMILES."""
    if len(canonical) < k:
        warnings.warn(f"unique@{k} from only {len(canonical)} valid molecules", stacklevel=3)
    head = canonical[:k]
    return len(set(head)) / len(head) if head else float("nan")


def moses_metrics(
    smiles: Sequence[str | None],
    reference: ReferenceStats | Sequence[str] | None = None,
    training: Iterable[str] | None = None,
    *,
    k: Sequence[int] = (1000, 10000),
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    fcd: bool = True,
) -> dict[str, Any]:
    """The MOSES metrics that are computable offline (MOSES ``get_all_metrics``).

    As in MOSES: ``validity`` is over all samples; the valid samples are canonicalized (RDKit
    canonical SMILES, duplicates kept) and re-parsed, and every other metric is computed on
    that list. ``unique@k`` uses its first k entries (with a warning when there are fewer).
    FCD, too, is computed on that list of valid canonical SMILES, duplicates included (MOSES
    passes ``remove_invalid(gen, canonize=True)`` to ``fcd_torch.FCD``), against the ChemNet
    statistics of the whole reference split (see :func:`chemnet_activations`).

    Parameters
    ----------
    smiles
        Generated SMILES (None or "" count as invalid).
    reference
        Reference set for SNN, Frag, Scaf and FCD: precomputed :class:`ReferenceStats` (FCD
        from its ``chemnet`` field), SMILES, or None for the MOSES test set
        (:func:`moses_reference`, :func:`moses_fcd_reference`).
    training
        Training SMILES for novelty (e.g. ``load_moses("train")`` of
        :mod:`sci_diffusion.chem.data`), compared as given, like MOSES (its train SMILES are
        RDKit-canonical); None leaves ``novelty`` None.
    k
        Sizes for unique@k.
    device
        Torch device for the Tanimoto products and ChemNet.
    cache_dir
        Where the default reference's statistics are cached (see :func:`moses_reference` and
        :func:`moses_fcd_reference`; computing ChemNet's takes about 15 minutes per split on a
        CPU core the first time).
    fcd
        Compute FCD (ChemNet runs on the valid samples, 3-5 ms each on a CPU core).

    Returns
    -------
    dict
        ``n_samples``, ``n_valid``, ``validity`` (MOSES "valid"), ``unique@<k>``, ``novelty``
        (novel / distinct valid), ``filters`` (fraction passing :func:`mol_passes_filters`),
        ``snn``, ``frag``, ``scaf`` (MOSES "SNN/Test", "Frag/Test", "Scaf/Test" for the
        default reference), ``intdiv1`` and ``intdiv2`` (MOSES "IntDiv", "IntDiv2"),
        ``FCD/Test`` and ``FCD/TestSF`` (MOSES's names: against the MOSES test and scaffold
        test splits; with another reference, ``FCD/Test`` is against it and ``FCD/TestSF`` is
        None; both None with ``fcd=False`` or a reference without ChemNet statistics).
        With no valid sample the metrics of valid samples are NaN; FCD is NaN (with a
        warning) for fewer than 2 valid samples.
    """
    if len(smiles) == 0:
        raise ValueError("no molecules to evaluate")
    canonical = [Chem.MolToSmiles(m) for m in map(_get_mol, smiles) if m is not None]
    result: dict[str, Any] = {
        "n_samples": len(smiles),
        "n_valid": len(canonical),
        "validity": len(canonical) / len(smiles),
    }
    for size in k:
        result[f"unique@{size}"] = _unique_at(canonical, size)
    result["novelty"] = None
    if training is not None:
        distinct = set(canonical)
        novel = len(distinct - set(training))
        result["novelty"] = novel / len(distinct) if distinct else float("nan")
    mols = [m for m in map(_get_mol, canonical) if m is not None]
    nan = float("nan")
    default_reference = reference is None
    fcd_test = fcd and (
        default_reference
        or not isinstance(reference, ReferenceStats)
        or reference.chemnet is not None
    )
    fcd_keys = {
        "FCD/Test": nan if fcd_test else None,
        "FCD/TestSF": nan if fcd and default_reference else None,
    }
    if not mols:
        metrics = ("filters", "snn", "frag", "scaf", "intdiv1", "intdiv2")
        return result | dict.fromkeys(metrics, nan) | fcd_keys
    if reference is None:
        reference = moses_reference("test", cache_dir)
    elif not isinstance(reference, ReferenceStats):
        reference = reference_stats(reference, chemnet=fcd, device=device)
    fps = morgan_fingerprints(mols)
    result["filters"] = fraction_passes_filters(mols)
    result["snn"] = snn(fps, reference.fingerprints, device=device)
    result["frag"] = counts_cosine_similarity(reference.fragments, fragment_counts(mols))
    result["scaf"] = counts_cosine_similarity(reference.scaffolds, scaffold_counts(mols))
    result["intdiv1"] = internal_diversity(fps, 1, device=device)
    result["intdiv2"] = internal_diversity(fps, 2, device=device)
    result |= fcd_keys
    if fcd_test and len(canonical) < 2:
        warnings.warn(f"FCD needs at least 2 valid molecules, got {len(canonical)}", stacklevel=2)
    elif fcd_test:
        generated = fcd_stats(canonical, device=device)
        if default_reference:
            for key, split in (("FCD/Test", "test"), ("FCD/TestSF", "test_scaffolds")):
                moses_stats = moses_fcd_reference(split, cache_dir, device=device)
                result[key] = frechet_distance(generated, moses_stats)
        elif reference.chemnet is not None:
            result["FCD/Test"] = frechet_distance(generated, reference.chemnet)
    return result
