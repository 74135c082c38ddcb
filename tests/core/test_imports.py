"""The core is torch-only: importing it must not pull in the field's heavy stacks."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("mujoco", "rdkit", "hydra", "gymnasium", "torch_geometric", "omegaconf")

_PROBE = f"""
import json, sys
import sci_diffusion.core
heavy = {HEAVY!r}
loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)
print(json.dumps({{"loaded": loaded, "torch": "torch" in sys.modules}}))
"""


def test_core_import_is_torch_only():
    # A fresh interpreter: this test process may already have imported anything.
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["torch"]
    assert report["loaded"] == [], f"sci_diffusion.core imported {report['loaded']}"
