"""Scaffold-constrained generation on ``qm9_graph`` (issue 16, item 5): the table of
docs/benchmarks.md, "Scaffold-constrained generation (issue 16)".

Scaffolds: the Murcko scaffolds (RDKit ``MurckoScaffoldSmiles``) of QM9's test split, counted;
the ``--scaffolds`` most frequent with ``--min-atoms``..``--max-atoms`` heavy atoms (at least
one ring by construction; acyclic molecules have the empty scaffold). Model: the embedded
unconditional checkpoint, the categorical ancestral sampler with ``--steps`` steps (as
``sample steps=100``). Per scaffold and per ``--resample`` value, ``--n`` samples from
:func:`sci_diffusion.tasks.scaffold_sampling.sample_with_scaffold` (seed ``--seed``), scored by
the task's screening gate (its ``gate_config``; novelty not checked):

* fixed exact — every sample's fixed atoms, charges and bonds equal the fragment's (asserted);
* strict validity — share of samples that pass the gate's structure checks (construction,
  sanitization, one fragment, elements, charges: status ``valid_structure`` or better);
* contains (valid) — share of the strictly valid samples that contain the scaffold
  (:func:`sci_diffusion.chem.scaffold.contains_scaffold`); contains (candidates) — the same
  among the candidates (every gate check passed, duplicates and alerts included);
* candidates — share of samples passing every check; uniqueness — distinct / strictly valid.

    OMP_NUM_THREADS=1 python scripts/scaffold_benchmark.py --n 1000 --resample 0 2

Progress goes to stderr, the markdown table to stdout.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

import torch


def _say(message: str) -> None:
    print(f"[scaffold_benchmark] {message}", file=sys.stderr, flush=True)


def frequent_scaffolds(count: int, min_atoms: int, max_atoms: int) -> list[tuple[str, int]]:
    """The ``count`` most frequent Murcko scaffolds of QM9's test split with ``min_atoms`` to
    ``max_atoms`` heavy atoms, with their number of test molecules."""
    from rdkit import Chem, rdBase
    from rdkit.Chem.Scaffolds import MurckoScaffold

    from sci_diffusion.chem.data import load_qm9

    counter: collections.Counter[str] = collections.Counter()
    with rdBase.BlockLogs():
        for record in load_qm9("test", coordinates=False):
            mol = Chem.MolFromSmiles(record.smiles)
            if mol is not None:
                counter[MurckoScaffold.MurckoScaffoldSmiles(mol=mol)] += 1
    chosen = []
    for smiles, n in counter.most_common():
        mol = Chem.MolFromSmiles(smiles) if smiles else None
        if mol is not None and min_atoms <= mol.GetNumAtoms() <= max_atoms:
            chosen.append((smiles, n))
        if len(chosen) == count:
            break
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--resample", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--scaffolds", type=int, default=5)
    parser.add_argument("--min-atoms", type=int, default=4)
    parser.add_argument("--max-atoms", type=int, default=7)
    parser.add_argument("--extra", nargs="*", default=[], help="more fragments to measure")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from omegaconf import OmegaConf

    from sci_diffusion.chem.gate import IN_SILICO_SCREENED, VALID_STRUCTURE, run_gate
    from sci_diffusion.chem.scaffold import contains_scaffold
    from sci_diffusion.tasks.scaffold_sampling import sample_with_scaffold, scaffold_for_task
    from sci_diffusion.train.embedded import embedded_run
    from sci_diffusion.train.evaluate import load_run

    run = load_run(embedded_run("qm9_graph"), device="cpu")
    cfg = run.task.cfg
    OmegaConf.set_struct(cfg, False)
    cfg.sampler.name, cfg.sampler.steps = "categorical", args.steps
    task, gate = run.task, run.task.gate_config()
    chosen = frequent_scaffolds(args.scaffolds, args.min_atoms, args.max_atoms)
    chosen += [(s, 0) for s in args.extra]
    _say(f"scaffolds (test molecules): {chosen}")
    rows = []
    for smiles, frequency in chosen:
        scaffold = scaffold_for_task(task, smiles)
        k = scaffold.num_atoms
        for r in args.resample:
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(args.seed)
            with torch.no_grad():
                samples = sample_with_scaffold(task, run.denoiser, scaffold, args.n, generator,
                                               "cpu", resample=r)  # fmt: skip
            seconds = time.perf_counter() - start
            fixed_exact = bool(
                (samples["atoms"][:, :k] == scaffold.atoms).all()
                and (samples["charges"][:, :k] == scaffold.charges).all()
                and (samples["bonds"][:, :k, :k] == scaffold.bonds).all()
            )
            assert fixed_exact, f"{smiles}: fixed entries differ from the fragment"
            mols, inputs = task.molecules(samples)
            records = run_gate(inputs, gate, processes=1)
            valid = [i for i, rec in enumerate(records)
                     if rec.validation_status in (VALID_STRUCTURE, IN_SILICO_SCREENED)]  # fmt: skip
            candidates = [i for i, rec in enumerate(records) if rec.passed]
            has = [contains_scaffold(m, scaffold) for m in mols]
            n = args.n
            row = {
                "scaffold": smiles, "k": k, "test": frequency, "r": r, "nfe": args.steps * (1 + r),
                "strict": len(valid) / n,
                "contains_valid": sum(has[i] for i in valid) / max(len(valid), 1),
                "contains_cand": sum(has[i] for i in candidates) / max(len(candidates), 1),
                "candidates": len(candidates) / n,
                "unique": len({records[i].canonical_smiles for i in valid}) / max(len(valid), 1),
                "seconds": seconds, "fixed_exact": fixed_exact,
            }  # fmt: skip
            rows.append(row)
            failed = collections.Counter(rec.failed_gate for rec in records if not rec.passed)
            misses = [records[i].canonical_smiles for i in valid if not has[i]][:3]
            _say(f"{smiles} r={r}: first failing checks {dict(failed)}; not containing: {misses}")
            _say(
                f"{smiles} r={r}: strict {row['strict']:.3f}, contains {row['contains_valid']:.3f}"
                f" (valid) {row['contains_cand']:.3f} (candidates), candidates "
                f"{row['candidates']:.3f}, unique {row['unique']:.3f}, {seconds:.0f} s sampling"
            )
    print(
        "| scaffold | k | test mols | resample | NFE | fixed exact | strict validity | "
        "contains (valid) | contains (candidates) | candidates | uniqueness | sampling s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| `{row['scaffold']}` | {row['k']} | {row['test']} | {row['r']} | {row['nfe']} | "
            f"{'yes' if row['fixed_exact'] else 'NO'} | {row['strict']:.1%} | "
            f"{row['contains_valid']:.1%} | {row['contains_cand']:.1%} | {row['candidates']:.1%} "
            f"| {row['unique']:.1%} | {row['seconds']:.0f} |"
        )
    for r in args.resample:
        sel = [row for row in rows if row["r"] == r]
        mean = {key: sum(row[key] for row in sel) / len(sel)
                for key in ("strict", "contains_valid", "candidates", "unique")}  # fmt: skip
        print(f"| mean, resample {r} | | | {r} | | | {mean['strict']:.1%} | "
              f"{mean['contains_valid']:.1%} | | {mean['candidates']:.1%} | "
              f"{mean['unique']:.1%} | |")  # fmt: skip


if __name__ == "__main__":
    main()
