"""A regular (non-editable) install carries every subpackage and the YAML configs, and puts
nothing but ``sci_diffusion`` at the top of site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def _declared_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(config["packages"])


def _source_packages() -> set[str]:
    found = {"sci_diffusion"}
    for init in (ROOT / "sci_diffusion").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    for top in ("envs", "tasks", "configs"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(("sci_diffusion", *init.parent.relative_to(ROOT).parts)))
    return found


def test_every_package_is_declared() -> None:
    missing = _source_packages() - _declared_packages()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("sci_diffusion-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"sci_diffusion"}
    assert "sci_diffusion/configs/config.yaml" in names
    assert "sci_diffusion/configs/task/toy2d.yaml" in names
    assert "sci_diffusion/tasks/toy2d.py" in names
    assert "sci_diffusion/py.typed" in names
    for package in _declared_packages():
        assert package.replace(".", "/") + "/__init__.py" in names
    # Embedded default checkpoints ship whole: config, model card and the checkpoint itself.
    embedded = [p for p in (ROOT / "sci_diffusion" / "embedded").rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in embedded)
    for path in embedded:
        assert path.relative_to(ROOT).as_posix() in names, path
