"""QM9 molecules as 3D graphs: the GDB SMILES's atoms and bonds at the DFT geometry's positions.

QM9 gives each molecule twice: a SMILES (atoms, bonds, charges; the GDB-17 graph) and an XYZ
geometry (elements and B3LYP coordinates, in another atom order). A 3D training example needs
both in one order. :func:`align_record` builds the SMILES's molecule with explicit hydrogens,
infers the geometry's connectivity from covalent radii (RDKit ``DetermineConnectivity``,
radii method, tightening the factor for strained rings, see :data:`COVALENT_FACTORS`) and maps
one onto the other by graph isomorphism over elements and connectivity (bond orders and
charges play no part, so the mapping does not depend on any bond-order guess). Molecules whose
relaxed geometry is not connected like their SMILES (QM9's known ~2-3% of "inconsistent"
structures, mostly rearranged during relaxation) are reported and skipped, never guessed.

Bond types and charges therefore come from the SMILES (kekulized), positions from the XYZ. With
``hydrogens=False`` the hydrogen atoms and their positions are dropped (heavy atoms only).
Positions are centred on the centroid of the kept atoms (the zero-CoM convention of EDM, with
unit masses). Data sets are cached like the 2D graphs (:mod:`.featurize`).
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDetermineBonds

from sci_diffusion.io.progress import progress

from .data import QM9Record, file_digest, load_qm9, qm9_source_files, qm9_split
from .featurize import (
    QM9_H_VOCAB,
    QM9_VOCAB,
    FeaturizationError,
    GraphDataset,
    GraphPadder,
    GraphVocab,
    cache_key,
    cache_name,
    cached_dataset,
    mol_to_graph,
    molecule_problem,
)
from .reconstruct import atoms_with_conformer

__all__ = ["align_record", "qm9_structures"]

#: Bump when the alignment changes: it is part of the cache key.
STRUCTURES_VERSION = 1


#: Covalent-radius tolerances tried in turn (RDKit's default first). Strained small rings put
#: 1,3 cross-ring atoms within the default 1.3 x (r_a + r_b); a tighter factor drops those
#: contacts while keeping every real bond (QM9 bonds are within ~1.1 x the radii sum).
COVALENT_FACTORS = (1.3, 1.2, 1.15, 1.1)


def _match_geometry(skeleton: Chem.Mol, record: QM9Record) -> tuple[int, ...]:
    """Geometry index of each SMILES atom: the first covalent factor whose contacts are
    exactly the SMILES's bonds (an isomorphism, so no bond is borrowed from a contact)."""
    atoms = atoms_with_conformer(record.elements, record.positions, no_implicit=True)
    counts = []
    for factor in COVALENT_FACTORS:
        geometry = Chem.Mol(atoms)  # DetermineConnectivity replaces any bonds it finds
        rdDetermineBonds.DetermineConnectivity(geometry, useVdw=True, covFactor=factor)
        counts.append(geometry.GetNumBonds())
        if counts[-1] == skeleton.GetNumBonds():
            match = geometry.GetSubstructMatch(skeleton)
            if match:
                return match
    raise FeaturizationError(
        f"geometry's covalent contacts ({'/'.join(map(str, counts))} at radius factors "
        f"{'/'.join(map(str, COVALENT_FACTORS))}) never form the SMILES's graph of "
        f"{skeleton.GetNumBonds()} bonds (connectivity changed on relaxation)"
    )


def _skeleton(mol: Chem.Mol) -> Chem.Mol:
    """Elements and connectivity only: every bond single, no charges, no aromaticity."""
    rw = Chem.RWMol(mol)
    for atom in rw.GetAtoms():
        atom.SetFormalCharge(0)
        atom.SetIsAromatic(False)
        atom.SetNoImplicit(True)
    for bond in rw.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    return rw.GetMol()


def align_record(
    record: QM9Record, vocab: GraphVocab
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One QM9 record as a 3D graph in the SMILES's atom order.

    Parameters
    ----------
    record : QM9Record
        Loaded with coordinates.
    vocab : GraphVocab
        :data:`~.featurize.QM9_H_VOCAB` (hydrogens as nodes) or :data:`~.featurize.QM9_VOCAB`.

    Returns
    -------
    atom_types, charges : np.ndarray
        (n,) int64 vocabulary indices.
    bonds : np.ndarray
        (n, n) int64 bond classes (kekulized SMILES bonds).
    positions : np.ndarray
        (n, 3) float32 Å, centred on the centroid of the n atoms.

    Raises
    ------
    FeaturizationError
        The SMILES does not parse, or the geometry's connectivity is not the SMILES's graph.
    """
    if record.positions is None or record.elements is None:
        raise ValueError("load the record with coordinates (load_qm9(..., coordinates=True))")
    mol = Chem.MolFromSmiles(record.smiles)
    if mol is None:
        raise FeaturizationError("SMILES does not parse")
    with_h = Chem.AddHs(mol)  # heavy atoms keep indices 0..n_heavy-1, hydrogens follow
    if with_h.GetNumAtoms() != len(record.elements):
        raise FeaturizationError(
            f"SMILES has {with_h.GetNumAtoms()} atoms with H, geometry {len(record.elements)}"
        )
    match = _match_geometry(_skeleton(with_h), record)
    positions = np.asarray(record.positions, np.float64)[list(match)]
    atom_types, charges, bonds = mol_to_graph(with_h if vocab.explicit_hydrogens else mol, vocab)
    positions = positions[: len(atom_types)]  # heavy atoms come first
    positions = positions - positions.mean(axis=0, keepdims=True)
    return atom_types, charges, bonds, positions.astype(np.float32)


def qm9_structures(
    split: str = "train", hydrogens: bool = False, *, limit: int | None = None, cache: bool = True
) -> GraphDataset:
    """QM9 3D graphs of one split part (a :class:`~.featurize.GraphDataset` with
    ``positions``), cached.

    Parameters
    ----------
    split : {"train", "val", "test"}
        Part of :func:`sci_diffusion.chem.data.qm9_split`, in its (SHA-256) order.
    hydrogens : bool
        Hydrogens as nodes (up to 29) or heavy atoms only (up to 9).
    limit : int, optional
        Only the first ``limit`` molecules of the part (before skipping inconsistent ones).
    cache : bool
        Read and write the on-disk cache.

    Returns
    -------
    GraphDataset
        ``positions`` (M, N, 3) Å; ``source_index`` holds GDB-9 indices; ``problems`` lists
        the skipped molecules with their reasons.
    """
    vocab = QM9_H_VOCAB if hydrogens else QM9_VOCAB
    key = cache_key("qm9-3d", split, vocab, limit)
    key["structures_version"] = STRUCTURES_VERSION
    key["sources"] = [file_digest(p) for p in qm9_source_files()]
    key["split_fingerprint"] = qm9_split().fingerprint
    name = cache_name("qm9_3d", split, vocab, limit)

    def build() -> GraphDataset:
        padder, problems = GraphPadder(), []
        source = f"qm9:{split}"
        records = load_qm9(split, limit=limit, coordinates=True)
        with rdBase.BlockLogs():
            for record in progress(records, f"aligning {source} 3D structures", unit="mol"):
                try:
                    padder.add(record.index, align_record(record, vocab))
                except FeaturizationError as err:
                    problems.append(molecule_problem(source, record.index, record.smiles, str(err)))
        return GraphDataset(**padder.finish(), vocab=vocab, name=source, problems=problems)

    return cached_dataset(name, key, build, cache)
