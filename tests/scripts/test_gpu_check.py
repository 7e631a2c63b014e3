"""scripts/gpu_check.sh where no GPU can be used: a clean skip that writes nothing,
a clear list of missing packages, and no Ray on its import path (GPU machines may lack it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

COMMITTED_REPORT = ROOT / "bench" / "results" / "gpu.md"


def run_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so the skip path is what runs on every machine.
    full_env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable, GPU_CHECK_OUT=str(tmp_path / "out"), **env)
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=120)


def report_state() -> bytes | None:
    return COMMITTED_REPORT.read_bytes() if COMMITTED_REPORT.exists() else None


def test_skips_cleanly_without_cuda(tmp_path: Path) -> None:
    before = report_state()
    proc = run_check(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device: GPU parts skipped" in proc.stdout
    assert not (tmp_path / "out").exists()
    assert report_state() == before


def test_names_missing_packages(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "pandas"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('simulated: pandas is not installed')\n")
    proc = run_check(tmp_path, PYTHONPATH=str(tmp_path / "shadow"))
    assert proc.returncode == 2
    assert "missing Python packages: pandas" in proc.stderr
    assert "pip install pandas" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_gpu_module_does_not_import_ray() -> None:
    code = "import sys, bench.gpu_throughput; sys.exit(any(m.split('.')[0] == 'ray' for m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr or "bench.gpu_throughput pulled in ray"
