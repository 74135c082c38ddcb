"""``qm9_3d`` and ``qm9_3d_h``: E(3)-equivariant diffusion of 3D molecules (EDM / MiDi style).

A molecule is a product of a continuous and several categorical variables, diffused jointly:

* ``pos`` (B, N, 3) Å on the zero-centre-of-mass subspace (:class:`CoMFreeSpace`), Gaussian
  noise with EDM's polynomial schedule, epsilon prediction (Hoogeboom et al. 2022);
* ``atoms`` and ``charges`` per node and, optionally, ``bonds`` per pair, categorical with
  marginal transitions and the cosine schedule (as MiDi, Vignac et al. 2023, so bonds need
  not be guessed from distances).

The denoiser is the EGNN of :mod:`sci_diffusion.nets.egnn` (equivariant positions, invariant
logits). Data: QM9 3D graphs aligned with their SMILES (:mod:`sci_diffusion.chem.structures`),
heavy atoms only (``qm9_3d``) or with hydrogens (``qm9_3d_h``).

Evaluation builds each molecule from its generated graph and keeps the model's own
coordinates as its conformer (never re-embedded); it reports the graph metrics of
``qm9_graph``, EDM's atom and molecule stability with hydrogens, the 3D plausibility pass
rate and, with hydrogens, the same metrics for bonds inferred from the coordinates alone
(RDKit ``rdDetermineBonds`` and EDM's distance table, :mod:`sci_diffusion.chem.reconstruct`).

Evaluation options (``task.eval.*``): ``gate`` (gate settings, e.g. ``geometry_profile:
strict``); ``refine`` (relax every candidate's copy with MMFF94, UFF where MMFF94 has no
parameters: ``candidates_refined.sdf`` / ``.csv`` beside the raw candidates, metrics under
``"refinement"``; the candidates stay the model's raw structures); ``sdf_hydrogens``
(``candidates.sdf`` with hydrogens added). Every evaluation also reports ``"geometry"``: how
many candidates have a bond or angle outside QM9's DFT range (:mod:`sci_diffusion.chem.
geometry_bounds`) or a C-C bond outside 1.2-1.6 Å, beside QM9's own test-split shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sci_diffusion.core import (
    CoMFreeSpace,
    Denoiser,
    DiffusionObjective,
    ProductSpace,
    make_schedule,
)
from sci_diffusion.io.progress import progress

from .base import Batch, DataInfo
from .molecule_graph import EDGE_KEY, NODE_KEYS, MoleculeGraphTask

POS_KEY = "pos"


class Molecule3DTask(MoleculeGraphTask):
    intended_use = (
        "Research on 3D generative models of small molecules; candidate "
        "structures for further in-silico study."
    )
    limitations = (
        "Candidates passed computational checks only: not synthesized, not assayed.",
        "Coordinates are the model's own; they are not DFT- or force-field-relaxed.",
        "Trained on QM9 chemistry (up to 9 heavy atoms of C, N, O, F).",
    )

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        if self._scaffold is not None:
            from sci_diffusion.chem.scaffold import ScaffoldError

            raise ScaffoldError(
                f"scaffold=: scaffold-constrained sampling is implemented for the graph tasks "
                f"(qm9_graph, moses_graph), not for {cfg.task.name}; drop scaffold="
            )
        d = cfg.task.diffusion
        self.position_schedule = make_schedule(d.position_schedule)
        self.with_bonds = bool(cfg.task.get("bonds", True))
        evaluation = cfg.task.get("eval") or {}
        self.refine = _flag(evaluation, "refine")
        self.sdf_hydrogens = _flag(evaluation, "sdf_hydrogens")
        self.gate_config()  # a bad gate setting fails now, before any sampling

    # -- data ----------------------------------------------------------------------------
    def data(self) -> Any:
        if self._data is None:
            d = self.cfg.task.data
            self._data = self.dataset.structures(
                "train", hydrogens=bool(d.get("hydrogens", False)), limit=d.get("limit")
            )
        return self._data

    def _build_space(self) -> ProductSpace:
        graph = super()._build_space().spaces
        spaces = {POS_KEY: CoMFreeSpace(self.position_schedule)}
        spaces.update({k: graph[k] for k in NODE_KEYS})
        if self.with_bonds:
            spaces[EDGE_KEY] = graph[EDGE_KEY]
        return ProductSpace(spaces)

    # -- model ---------------------------------------------------------------------------
    def build_network(self) -> nn.Module:
        from sci_diffusion.nets.egnn_denoiser import EGNNDenoiserNet

        options = {k: v for k, v in self.cfg.model.items() if k != "name"}
        edge_key = EDGE_KEY if self.with_bonds else None
        properties = len(self.condition.names)
        return EGNNDenoiserNet.from_space(
            self.space(), NODE_KEYS, edge_key, POS_KEY, properties=properties, **options
        )

    def denoiser(self, net: nn.Module) -> Denoiser:
        prediction = str(self.cfg.task.diffusion.position_prediction)
        return Denoiser(net, self.space(), prediction={POS_KEY: prediction})

    def objective(self, denoiser: Denoiser) -> DiffusionObjective:
        d = self.cfg.task.diffusion
        weights = {k: float(v) for k, v in d.component_weights.items()
                   if k != EDGE_KEY or self.with_bonds}  # fmt: skip
        return DiffusionObjective(denoiser, "uniform", component_weights=weights)

    def data_info(self) -> DataInfo:
        info = super().data_info()
        dataset, vocab = self.dataset, self.data().vocab
        info.name = f"{dataset.title} 3D structures ({vocab.name}; {dataset.structures_note})"
        return info

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        index = torch.randint(0, len(self.data()), (batch_size,), generator=generator)
        x0, masks = self._one_hot(index)
        if not self.with_bonds:
            del x0[EDGE_KEY], masks[EDGE_KEY]
        x0[POS_KEY] = self.data().positions[index]
        masks[POS_KEY] = masks["atoms"]
        return self.conditioned_batch(x0, masks, index, generator)

    # -- sampling and evaluation ----------------------------------------------------------
    def state_masks(self, mask: Tensor, pair: Tensor) -> dict[str, Tensor]:
        """Positions and node types on the node mask; bonds (if modelled) on the pairs."""
        masks = {POS_KEY: mask, "atoms": mask, "charges": mask}
        if self.with_bonds:
            masks[EDGE_KEY] = pair
        return masks

    def feature_width(self, key: str) -> int:
        return 3 if key == POS_KEY else super().feature_width(key)

    def samples_from_state(self, out: dict[str, Tensor], mask: Tensor,
                           pair: Tensor) -> dict[str, Tensor]:  # fmt: skip
        """``pos`` (n, N, 3), class indices (bonds all zero when not modelled), node mask."""
        samples = {k: out[k].argmax(-1).cpu() for k in NODE_KEYS}
        samples[EDGE_KEY] = (out[EDGE_KEY].argmax(-1).cpu() if self.with_bonds
                             else torch.zeros(pair.shape, dtype=torch.long))  # fmt: skip
        samples[POS_KEY] = out[POS_KEY].float().cpu()
        samples["node_mask"] = mask.cpu()
        return samples

    def molecules(self, samples: dict[str, Tensor]) -> tuple[list[Any], list[Any]]:
        """The generated graphs' molecules, each carrying the model's own coordinates."""
        from sci_diffusion.chem.reconstruct import with_conformer

        mols, inputs = super().molecules(samples)
        for i, mol in enumerate(mols):
            if mol is not None:
                positions = samples[POS_KEY][i][samples["node_mask"][i]].double().numpy()
                mols[i] = inputs[i] = with_conformer(mol, positions)
        return mols, inputs

    def score(self, samples: dict[str, Tensor], out_dir: Path) -> dict[str, Any]:
        samples = self.take_baseline(samples)
        mols, inputs = self.molecules(samples)
        extra = {"bonds_from": "generated" if self.with_bonds else "edm_distances"}
        if self.data().vocab.explicit_hydrogens:
            extra["from_coordinates"] = self.coordinate_reconstructions(samples)
        return self.screen(mols, inputs, out_dir, extra, sdf_hydrogens=self.sdf_hydrogens)

    def after_gate(
        self, records: list[Any], mols: list[Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The candidates' geometry against QM9's ranges and, with ``task.eval.refine``, the
        force-field refinement of a copy of each (files ``candidates_refined.sdf`` / ``.csv``)."""
        from sci_diffusion.chem.geometry_bounds import candidate_geometry

        candidates = [r for r in records if r.passed]
        structures = [r.mol() for r in candidates]
        metrics, files = self.conditioning_report(records)
        metrics["geometry"] = candidate_geometry(structures)
        if self.refine:
            metrics["refinement"], refined = _refinement(candidates, structures)
            files.update(refined)
        return metrics, files

    def coordinate_reconstructions(self, samples: dict[str, Tensor]) -> dict[str, Any]:
        """Metrics of the same samples with bonds inferred from coordinates and atom types
        alone (generated bonds ignored): RDKit's ``DetermineBonds`` (total charge 0) and EDM's
        distance table — the latter is how EDM and its successors report stability."""
        from sci_diffusion.chem.metrics import molecule_metrics
        from sci_diffusion.chem.reconstruct import mol_from_determine_bonds, mol_from_edm_distances

        vocab, training = self.data().vocab, self.training_smiles()
        rdkit_mols, edm_mols = [], []
        label = "bonds from coordinates"
        for i in progress(range(samples["atoms"].shape[0]), label, unit="mol"):
            keep = samples["node_mask"][i]
            symbols = [vocab.atoms[a] for a in samples["atoms"][i][keep].tolist()]
            charges = [vocab.charges[c] for c in samples["charges"][i][keep].tolist()]
            positions = samples[POS_KEY][i][keep].double().numpy()
            # Bounded search: xyz2mol's bond-order search can be exponential on the dense
            # contact graphs of poor generated geometries (a bounded miss is a failure).
            rdkit_mols.append(mol_from_determine_bonds(symbols, positions, sum(charges),
                                                       max_iterations=10_000)[0])  # fmt: skip
            edm_mols.append(mol_from_edm_distances(symbols, positions, charges))
        return {
            name: molecule_metrics(mols, training, True, training_is_canonical=True)
            for name, mols in (("rdkit_determine_bonds", rdkit_mols), ("edm_distances", edm_mols))
        }


def _flag(evaluation: Any, key: str) -> bool:
    """A boolean ``task.eval.<key>`` (absent: False); anything else is a user error."""
    from sci_diffusion.io.errors import UserInputError

    value = evaluation.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise UserInputError(f"task.eval.{key} must be true or false, got {value!r}")
    return value


def _refinement(candidates: list[Any], structures: list[Any]) -> tuple[dict[str, Any], dict]:
    """Refine a copy of every candidate; the summary with the refined structures' geometry
    ("with_refinement") and the files ``candidates_refined.sdf`` / ``.csv``."""
    import csv
    import io

    from rdkit import Chem

    from sci_diffusion.chem.geometry_bounds import candidate_geometry
    from sci_diffusion.chem.outputs import _cell
    from sci_diffusion.chem.plausibility import (
        PLAUSIBILITY_CHECKS,
        PlausibilityConfig,
        check_plausibility_many,
    )
    from sci_diffusion.chem.refine import (
        REFINED_SDF,
        REFINEMENT_FIELDS,
        refine_many,
        refined_sdf_text,
        refinement_summary,
    )

    refinements = refine_many(structures, processes=None, progress=True)
    summary = refinement_summary(refinements)
    refined = [r.mol() for r in refinements]
    heavy = [None if m is None else Chem.RemoveHs(m) for m in refined]
    kept = [m for m in heavy if m is not None]
    checks = check_plausibility_many(kept, PlausibilityConfig(profile="strict"), processes=None,
                                     progress=True)  # fmt: skip
    default_pass = sum(all(c[k] is True for k in PLAUSIBILITY_CHECKS) for c in checks)
    summary["with_refinement"] = {
        **candidate_geometry(kept),
        "plausible_default": default_pass,
        "plausible_strict": sum(c["plausible"] is True for c in checks),
        "note": "the refined copies (hydrogens removed) of the raw candidates; the candidates "
        "themselves are the model's raw structures",
    }
    tags = [{"index": r.index, "name": r.name, "canonical_smiles": r.canonical_smiles}
            for r in candidates]  # fmt: skip
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["index", "canonical_smiles", *REFINEMENT_FIELDS])
    for tag, refinement in zip(tags, refinements, strict=True):
        fields = refinement.to_dict()
        writer.writerow([tag["index"], tag["canonical_smiles"],
                         *(_cell(fields[k]) for k in REFINEMENT_FIELDS)])  # fmt: skip
    files = {
        REFINED_SDF: refined_sdf_text(zip(tags, refinements, strict=True)),
        REFINED_SDF.replace(".sdf", ".csv"): table.getvalue(),
    }
    return summary, files
