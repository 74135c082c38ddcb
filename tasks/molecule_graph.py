"""``qm9_graph`` and ``moses_graph``: discrete graph diffusion of molecules (DiGress-style).

A molecule is a product of categorical variables: atom types and formal charges per node and a
symmetric bond type (none / single / double / triple, kekulized) per pair, each noised with
*marginal* transitions towards its training-set frequencies (Vignac et al. 2023). The node
count of a sample is drawn from the training histogram; padded nodes are all-zero rows. The
denoiser is the dense graph transformer of :mod:`sci_diffusion.nets.graph_transformer`.
Evaluation turns graphs into RDKit molecules and runs the metrics and the screening gate.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.functional import one_hot

from sci_diffusion.chem.metrics import whole_molecule_smiles
from sci_diffusion.core import (
    CategoricalSpace,
    Denoiser,
    DiffusionObjective,
    ProductSpace,
    make_schedule,
)
from sci_diffusion.core.sampler_config import describe_sampler, run_sampler
from sci_diffusion.io.progress import Progress, progress

from .base import Batch, DataInfo, Task
from .graph_keys import EDGE_KEY, NODE_KEYS
from .property_conditioning import PropertyConditioning, conditioning_figures


def _load_guidance_predictor(path: Any) -> Any:
    """The property predictor of ``guidance.predictor`` (a file of
    :func:`~.property_predictor.save_predictor`), checked before any sampling."""
    from sci_diffusion.chem.conditioning import ConditionError

    from .property_predictor import load_predictor

    if not path:
        raise ConditionError("guidance.method=predictor needs guidance.predictor=<predictor file>")
    if not Path(str(path)).is_file():
        raise ConditionError(f"guidance.predictor={path}: no such file")
    return load_predictor(Path(str(path)))[0]


class MoleculeGraphTask(Task):
    validation_status = "in_silico_screened candidates only (never synthesized or assayed)"
    intended_use = (
        "Research on generative models of small molecular graphs; candidates for "
        "further in-silico study."
    )
    limitations = (
        "Candidates passed computational checks only: not synthesized, not assayed.",
        "Trained on QM9/MOSES chemistry; says nothing about other chemical spaces.",
    )

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._data: Any = None
        self._training_smiles: frozenset[str] | None = None
        self._space: ProductSpace | None = None
        self.schedule = make_schedule(cfg.task.diffusion.schedule)
        self.condition = PropertyConditioning.from_config(cfg.task)
        self.conditioning = self.condition.describe()
        #: the targets of the sampling request ({} when unconditional), checked now so that
        #: a bad request fails before any sampling.
        guidance = cfg.get("guidance") or {}
        self.guidance_method = str(guidance.get("method", "cfg"))
        self._predictor: Any = None
        predictor_names = None
        if self.guidance_method == "predictor" and cfg.get("target"):
            self._predictor = _load_guidance_predictor(guidance.get("predictor"))
            predictor_names = self._predictor.names
        self._targets: dict[str, float] = self.condition.requested_targets(
            cfg.get("target"), predictor_names
        )
        self._baseline_smiles: list[str] | None = None
        #: the fragment every sample keeps (``scaffold=``), parsed now: a bad one fails early.
        self._scaffold: Any = None
        if cfg.get("scaffold"):
            from .scaffold_sampling import scaffold_for_task

            self._scaffold = scaffold_for_task(self, str(cfg.scaffold))

    # -- data ----------------------------------------------------------------------------
    @property
    def dataset(self) -> Any:
        """The data set named by ``task.data.dataset`` (:mod:`sci_diffusion.chem.datasets`)."""
        from sci_diffusion.chem.datasets import get_dataset

        return get_dataset(str(self.cfg.task.data.dataset))

    def data(self) -> Any:
        if self._data is None:
            d = self.cfg.task.data
            options = {"hydrogens": bool(d.get("hydrogens", False)), "limit": d.get("limit")}
            if d.get("aromatic_bonds", False):
                # Passed only when asked for: data sets from user modules may not take it.
                options["aromatic"] = True
            self._data = self.dataset.graphs("train", **options)
        return self._data

    def space(self) -> ProductSpace:
        """The product space, built once from the training marginals (it is read every step)."""
        if self._space is None:
            self._space = self._build_space()
        return self._space

    def _build_space(self) -> ProductSpace:
        stats = self.data().stats
        transition = str(self.cfg.task.diffusion.transition)

        def component(marginals: Tensor, symmetric: bool = False) -> CategoricalSpace:
            return CategoricalSpace(marginals.numel(), self.schedule, transition,
                                    marginals=marginals.float(), symmetric=symmetric)  # fmt: skip

        return ProductSpace({
            "atoms": component(stats.atom_type_marginals),
            "charges": component(stats.charge_marginals),
            EDGE_KEY: component(stats.bond_marginals, symmetric=True),
        })  # fmt: skip

    def training_smiles(self) -> frozenset[str]:
        """Canonical SMILES of the training split (novelty)."""
        if self._training_smiles is None:
            from sci_diffusion.chem.metrics import canonical_smiles_set
            from sci_diffusion.io.cache import cache_dir

            smiles = self.dataset.smiles("train")
            self._training_smiles = canonical_smiles_set(
                smiles, processes=None, progress=True, cache_dir=cache_dir() / "canonical"
            )
        return self._training_smiles

    # -- model ---------------------------------------------------------------------------
    def build_network(self) -> nn.Module:
        from sci_diffusion.nets.graph_transformer import GraphDenoiserNet

        options = {k: v for k, v in self.cfg.model.items() if k != "name"}
        properties = len(self.condition.names)
        return GraphDenoiserNet.from_space(
            self.space(), NODE_KEYS, EDGE_KEY, properties=properties, **options
        )

    def prepare_network(self, net: nn.Module) -> None:
        """A conditional network learns its property normalization from the training set."""
        if self.condition:
            net.set_property_stats(self.condition.training_values(self.data().source_index))

    def denoiser(self, net: nn.Module) -> Denoiser:
        return Denoiser(net, self.space())

    def objective(self, denoiser: Denoiser) -> DiffusionObjective:
        d = self.cfg.task.diffusion
        return DiffusionObjective(denoiser, component_weights=dict(d.component_weights))

    def data_info(self) -> DataInfo:
        data = self.data()
        digest = hashlib.sha256()
        for tensor in (data.atom_types, data.charges, data.bonds):
            digest.update(tensor.numpy().tobytes())
        dataset = self.dataset
        return DataInfo(
            name=f"{dataset.name} molecular graphs ({data.vocab.name})",
            size=len(data),
            split=dataset.split,
            fingerprint=digest.hexdigest()[:16],
            source=dataset.source,
        )

    def _one_hot(self, index: Tensor) -> dict[str, Tensor]:
        data, space = self.data(), self.space()
        mask = data.node_mask[index]
        pair = mask[:, :, None] & mask[:, None, :]
        pair &= ~torch.eye(mask.shape[1], dtype=torch.bool)[None]
        x = {
            "atoms": one_hot(data.atom_types[index].long(), space["atoms"].num_classes),
            "charges": one_hot(data.charges[index].long(), space["charges"].num_classes),
            EDGE_KEY: one_hot(data.bonds[index].long(), space[EDGE_KEY].num_classes),
        }
        masks = {"atoms": mask, "charges": mask, EDGE_KEY: pair}
        return {k: v.float() * masks[k][..., None] for k, v in x.items()}, masks

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        index = torch.randint(0, len(self.data()), (batch_size,), generator=generator)
        x0, masks = self._one_hot(index)
        return self.conditioned_batch(x0, masks, index, generator)

    def conditioned_batch(
        self, x0: dict[str, Tensor], masks: dict[str, Tensor], index: Tensor,
        generator: torch.Generator,
    ) -> Batch:  # fmt: skip
        """A batch of training rows ``index``, with their property values (condition dropout
        applied) when the task is conditional."""
        if not self.condition:
            return Batch(x0, mask=masks)
        self.condition.training_values(self.data().source_index)
        values = self.condition.batch_values(index, generator)
        return Batch(x0, mask=masks, cond={"properties": values})

    # -- sampling and evaluation ----------------------------------------------------------
    def sample_masks(
        self,
        n: int,
        generator: torch.Generator,
        device: torch.device,
        counts: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Node masks (n, N) for node counts drawn from the training histogram (or the given
        ``counts`` (n,)), and the pair masks (n, N, N) of their real off-diagonal pairs."""
        stats = self.data().stats
        n_max = int(stats.max_nodes)
        if counts is None:
            # Node counts on the CPU (multinomial), seeded from the sampling generator's stream.
            seed = int(torch.randint(2**31, (1,), generator=generator, device=generator.device))
            cpu = torch.Generator().manual_seed(seed)
            counts = torch.multinomial(stats.node_counts.double(), n, replacement=True,
                                       generator=cpu)  # fmt: skip
        elif counts.shape != (n,) or int(counts.min()) < 1 or int(counts.max()) > n_max:
            raise ValueError(f"counts must be ({n},) in [1, {n_max}], got {tuple(counts.shape)}")
        mask = (torch.arange(n_max)[None] < counts.cpu()[:, None]).to(device)
        eye = torch.eye(n_max, dtype=torch.bool, device=device)
        return mask, mask[:, :, None] & mask[:, None, :] & ~eye[None]

    def generate(
        self, denoiser: Denoiser, n: int, generator: torch.Generator, device: torch.device
    ) -> dict[str, Tensor]:
        """``n`` graphs: class indices (n, N) / (n, N, N) and node masks, CPU tensors.

        With ``target.<property>=<value>`` (a conditional checkpoint) the samples are guided
        towards the targets (``guidance.scale``) and, unless ``task.eval.compare_unconditional``
        is false, a second set drawn without guidance (the same network's unconditional
        branch, same sampler and n) comes back under ``baseline_*`` keys for the report."""
        if not self._targets:
            return self._sample_graphs(denoiser, n, generator, device)
        scale = float(self.cfg.guidance.scale)
        if self._predictor is not None:
            from .predictor_guidance import PredictorGuidance

            names = self._predictor.names
            row = [self._targets.get(name, float("nan")) for name in names]
            targets = torch.tensor([row] * n, device=device)
            guided: Any = PredictorGuidance(denoiser, self._predictor.to(device), targets, scale)
            baseline: Any = denoiser
        else:
            targets = self.condition.target_tensor(self._targets, n, denoiser.net).to(device)
            guided = self.condition.guided(denoiser, targets, scale)
            baseline = self.condition.guided(denoiser, torch.full_like(targets, float("nan")), 0)
        samples = self._sample_graphs(guided, n, generator, device)
        if bool(self.cfg.task.eval.get("compare_unconditional", True)):
            for k, v in self._sample_graphs(baseline, n, generator, device).items():
                samples[f"baseline_{k}"] = v
        return samples

    def _sample_graphs(
        self,
        denoise: Any,
        n: int,
        generator: torch.Generator,
        device: torch.device,
        counts: Tensor | None = None,
    ) -> dict[str, Tensor]:
        if self._scaffold is not None:
            from .scaffold_sampling import sample_with_scaffold

            resample = int(self.cfg.task.eval.get("scaffold_resample", 3))
            return sample_with_scaffold(self, denoise, self._scaffold, n, generator, device,
                                        resample=resample)  # fmt: skip
        space = self.space()
        mask, pair = self.sample_masks(n, generator, device, counts)
        masks = self.state_masks(mask, pair)
        x = {k: space[k].prior((n, *m.shape[1:], self.feature_width(k)), m, generator=generator,
                               device=device) for k, m in masks.items()}  # fmt: skip
        with self.sampling_progress(n) as bar:
            out = run_sampler(denoise, space, x, self.cfg.sampler, generator, mask=masks,
                              callback=lambda _: bar.update(1))  # fmt: skip
        return self.samples_from_state(out, mask, pair)

    def state_masks(self, mask: Tensor, pair: Tensor) -> dict[str, Tensor]:
        """The mask of every state component from the node (n, N) and pair (n, N, N) masks."""
        return {"atoms": mask, "charges": mask, EDGE_KEY: pair}

    def feature_width(self, key: str) -> int:
        """The last dimension of state component ``key`` (its class count)."""
        return self.space()[key].num_classes

    def samples_from_state(self, out: dict[str, Tensor], mask: Tensor,
                           pair: Tensor) -> dict[str, Tensor]:  # fmt: skip
        """A sampler's final state as CPU samples: class indices and the node mask."""
        samples = {k: out[k].argmax(-1).cpu() for k in (*NODE_KEYS, EDGE_KEY)}
        samples["node_mask"] = mask.cpu()
        return samples

    def score(self, samples: dict[str, Tensor], out_dir: Path) -> dict[str, Any]:
        mols, inputs = self.molecules(self.take_baseline(samples))
        inputs, missing = self.require_scaffold(mols, inputs)
        extra = {**self.scaffold_metrics(missing), **self.aromatic_hydrogen_metrics(mols)}
        return self.screen(mols, inputs, out_dir, extra)

    def aromatic_hydrogen_metrics(self, mols: list[Any]) -> dict[str, Any]:
        """With an aromatic bond class: how many molecules needed pyrrole-type hydrogens
        placed to kekulize (:func:`~sci_diffusion.chem.featurize.place_aromatic_hydrogens`),
        and the validity DiGress's decoding (no placement) would report. Else empty."""
        if not self.data().vocab.aromatic:
            return {}
        from rdkit import Chem

        from sci_diffusion.chem.sanitize import sanitize

        valid = placed = 0
        for mol in mols:
            if mol is None or sanitize(Chem.Mol(mol))[0] is not None:
                continue
            valid += 1
            # Implicit-H graphs get explicit hydrogens only from the placement, which happens
            # only when the molecule then sanitizes: every placed one is among the valid.
            placed += any(atom.GetNumExplicitHs() for atom in mol.GetAtoms())
        return {"aromatic_hydrogens": {
            "molecules_with_placed_nh": placed,
            "valid_with_placed_nh": placed,
            "validity_without_placement": (valid - placed) / max(1, len(mols)),
            "note": "validity_without_placement: sanitizes without any placed [nH] (DiGress's "
                    "decoding); a molecule that needed one counts as invalid there",
        }}  # fmt: skip

    def scaffold_metrics(self, missing: int) -> dict[str, Any]:
        """``{"scaffold": ...}`` for ``metrics.json`` with ``scaffold=`` (else empty);
        ``missing``: sanitized molecules rejected for lacking the fragment."""
        if self._scaffold is None:
            return {}
        return {"scaffold": {
            "fragment": self._scaffold.text, "smiles": self._scaffold.smiles,
            "atoms": self._scaffold.num_atoms, "method": "inpainting (categorical forward "
            "process) with RePaint resampling",
            "resample": int(self.cfg.task.eval.get("scaffold_resample", 3)),
            "n_sanitized_without_scaffold": int(missing),
        }}  # fmt: skip

    def require_scaffold(self, mols: list[Any], inputs: list[Any]) -> tuple[list[Any], int]:
        """With ``scaffold=``: a molecule that sanitizes but does not contain the fragment as
        RDKit sees it (a fused ring perceived aromatic changes the fixed bonds' type) becomes
        a construction failure saying so, so every candidate contains it. Returns the gate's
        inputs and how many were turned away so."""
        if self._scaffold is None:
            return inputs, 0
        from rdkit import Chem

        from sci_diffusion.chem.gate import NotConstructed
        from sci_diffusion.chem.sanitize import sanitize
        from sci_diffusion.chem.scaffold import contains_scaffold

        out, missing = list(inputs), 0
        for i, mol in enumerate(mols):
            if mol is None or contains_scaffold(mol, self._scaffold):
                continue
            if sanitize(Chem.Mol(mol))[0] is not None:
                continue  # does not sanitize: the gate's own sanitization check reports it
            out[i] = NotConstructed(
                f"does not contain the scaffold {self._scaffold.smiles} as RDKit perceives "
                "it (fixed atoms and bonds are exact; aromaticity of a fused ring differs)"
            )
            missing += 1
        return out, missing

    def take_baseline(self, samples: dict[str, Tensor]) -> dict[str, Tensor]:
        """The guided samples without their ``baseline_*`` part, whose candidates' SMILES are
        kept for the conditioning report (see :meth:`generate`)."""
        baseline = {k.removeprefix("baseline_"): v for k, v in samples.items()
                    if k.startswith("baseline_")}  # fmt: skip
        self._baseline_smiles = self._candidate_smiles(baseline) if baseline else None
        return {k: v for k, v in samples.items() if not k.startswith("baseline_")}

    def _candidate_smiles(self, samples: dict[str, Tensor]) -> list[str]:
        """Canonical SMILES of the samples that pass the gate (the baseline's candidates)."""
        from sci_diffusion.chem.gate import run_gate

        _, inputs = self.molecules(samples)
        records = run_gate(inputs, self.gate_config(), training_smiles=self.training_smiles(),
                           processes=None, progress=True)  # fmt: skip
        return [r.canonical_smiles for r in records if r.passed]

    def sampling_progress(self, n: int) -> Progress:
        """A progress display of the sampler's steps (sampling a large set takes minutes)."""
        from sci_diffusion.core.sampler_config import sampler_settings

        steps = sampler_settings(self.cfg.sampler)[1]
        return Progress(steps, f"sampling {n} {self.cfg.task.name} molecules", unit="steps")

    def conditioning_report(self, records: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """``conditioning`` metrics and ``candidates_conditioning.csv`` (per candidate: its
        targets, achieved RDKit values and errors) for a guided request; nothing otherwise."""
        if not self._targets:
            return {}, {}
        import csv
        import io

        names = list(self._targets)
        candidates = [r for r in records if r.passed]
        achieved = self.condition.achieved([r.canonical_smiles for r in candidates], names)
        figures = conditioning_figures(self._targets, achieved)
        if self._baseline_smiles is not None:
            base = conditioning_figures(
                self._targets, self.condition.achieved(self._baseline_smiles, names)
            )
            for name in names:
                figures[name]["unconditional"] = {
                    k: base[name][k] for k in ("n", "mae", "hit_rate", "mean")
                }
                mae, ref = figures[name]["mae"], base[name]["mae"]
                figures[name]["mae_ratio"] = mae / ref if mae is not None and ref else None
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = ["index", "canonical_smiles"]
        for prefix in ("target", "achieved", "error"):
            header += [f"{prefix}_{n}" for n in names]
        writer.writerow(header)
        targets = [self._targets[n] for n in names]
        for record, row in zip(candidates, achieved, strict=True):
            errors = [f"{v - t:.6g}" for v, t in zip(row, targets, strict=True)]
            writer.writerow([record.index, record.canonical_smiles, *targets,
                             *(f"{v:.6g}" for v in row), *errors])  # fmt: skip
        method = ("classifier guidance (property predictor)" if self._predictor is not None
                  else "classifier-free guidance")  # fmt: skip
        metrics = {"conditioning": {
            "method": method, "scale": float(self.cfg.guidance.scale), "properties": figures,
        }}  # fmt: skip
        return metrics, {"candidates_conditioning.csv": buffer.getvalue()}

    def molecules(self, samples: dict[str, Tensor]) -> tuple[list[Any], list[Any]]:
        """Unsanitized RDKit molecules of generated graphs (None where construction failed)
        and the gate's inputs (the same molecules, or :class:`NotConstructed` with why)."""
        from sci_diffusion.chem.featurize import graph_to_mol
        from sci_diffusion.chem.gate import NotConstructed

        vocab = self.data().vocab
        mols, inputs = [], []
        for i in progress(range(samples["atoms"].shape[0]), "graphs to molecules", unit="mol"):
            try:
                mol = graph_to_mol(
                    samples["atoms"][i],
                    samples["charges"][i],
                    samples[EDGE_KEY][i],
                    vocab,
                    samples["node_mask"][i],
                )
                mols.append(mol)
                inputs.append(mol)
            except ValueError as err:
                mols.append(None)
                inputs.append(NotConstructed(str(err)))
        return mols, inputs

    def gate_config(self) -> Any:
        """The gate's settings: ``task.eval.gate`` (a mapping of
        :class:`~sci_diffusion.chem.gate.GateConfig` settings; absent: the defaults).

        Raises
        ------
        sci_diffusion.chem.gate.GateConfigError
            (a user error) for an unknown setting or a bad value, naming ``task.eval.gate``.
        """
        from sci_diffusion.chem.gate import GateConfig, GateConfigError

        settings = self.cfg.task.eval.get("gate") or {}
        if hasattr(settings, "items"):
            settings = {str(k): v for k, v in settings.items()}
        try:
            return GateConfig.from_dict(settings)
        except GateConfigError as err:
            raise GateConfigError(f"task.eval.gate: {err}") from None

    def after_gate(
        self, records: list[Any], mols: list[Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Extra metrics and extra output files (``{name: text}``) computed from the gate's
        records before the outputs are written. Default: the conditioning report (if any)."""
        return self.conditioning_report(records)

    def screen(
        self,
        mols: list[Any],
        inputs: list[Any],
        out_dir: Path,
        extra_metrics: dict[str, Any] | None = None,
        *,
        sdf_hydrogens: bool = False,
    ) -> dict[str, Any]:
        """Metrics, the screening gate (:meth:`gate_config`) and the output files of generated
        molecules (``sdf_hydrogens``: ``candidates.sdf`` with hydrogens added)."""
        from sci_diffusion.chem.gate import run_gate
        from sci_diffusion.chem.metrics import molecule_metrics
        from sci_diffusion.chem.outputs import provenance, write_outputs

        start = time.perf_counter()
        config = self.gate_config()
        training = self.training_smiles()
        explicit_h = self.data().vocab.explicit_hydrogens
        metrics = molecule_metrics(mols, training, explicit_h, training_is_canonical=True)
        benchmark = self.dataset.benchmark_metrics(whole_molecule_smiles(mols))
        if benchmark:
            metrics[self.dataset.name] = benchmark
        records = run_gate(inputs, config, training_smiles=training, processes=None,
                           progress=True)  # fmt: skip
        after, files = self.after_gate(records, mols)
        sampler = describe_sampler(self.cfg.sampler)
        extra = {**metrics, **(extra_metrics or {}), **after, **sampler,
                 "gate_seconds": round(time.perf_counter() - start, 2)}  # fmt: skip
        gate_metrics = write_outputs(
            out_dir, records, config=config, extra_metrics=extra,
            provenance_fields=provenance(
                model_fingerprint=self.model_fingerprint or "unknown (no checkpoint loaded)",
                sampler=sampler["sampler"],
                steps=sampler["steps"], seed=int(self.cfg.task.eval.seed),
            ),
            sdf_hydrogens=sdf_hydrogens, extra_files=files,
        )  # fmt: skip
        return {**gate_metrics, **extra}
