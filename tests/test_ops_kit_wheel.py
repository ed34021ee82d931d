"""The ops kit ships in the wheel: ``hector ops-kit`` works from a plain ``pip install``
of the built wheel (no source tree), not only from a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_ops_kit_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    wheels, venv, out = tmp_path / "wheels", tmp_path / "venv", tmp_path / "kit"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    [wheel] = wheels.glob("hector_py-*.whl")
    subprocess.run([python, "-m", "pip", "-q", "install", "--no-deps", str(wheel)], check=True)
    # The dependencies come from this venv's site-packages; hector_py only from the wheel
    # (PYTHONPATH entries don't run the .pth files of this venv's editable install).
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    result = subprocess.run(
        [python, "-m", "hector_py", "ops-kit", "--namespace", "acme", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    probe = [python, "-c", "import hector_py; print(hector_py.__file__)"]
    where = subprocess.run(probe, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(venv)), where.stdout  # really the installed wheel
    alerts = (out / "prometheus" / "alerts.yml").read_text()
    assert "acme_" in alerts and "hector_" not in alerts.replace("hector-py", "")
    assert len(list((out / "grafana" / "dashboards").glob("*.json"))) == 3
