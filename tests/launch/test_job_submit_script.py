"""examples/ray_job_submit.sh's own logic, with a stand-in `ray` first on PATH: the real
submission is tested against a real head in test_job_submit.py."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import ROOT

# Says what a head without its job agent yet says, as many times as FAILURES holds, then succeeds.
NO_AGENT_YET = """#!/usr/bin/env bash
left=$(cat "$FAILURES")
echo "$*" >> "$CALLS"
if [ "$left" -gt 0 ]; then
  echo $((left - 1)) > "$FAILURES"
  echo "RuntimeError: Request failed with status code 500: No available agent to submit job, please try again later.." >&2
  exit 1
fi
echo "Job 'j1' submitted successfully"
"""


def _submit(tmp_path: Path, failures: int, wait_s: int) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ray").write_text(NO_AGENT_YET)
    (bin_dir / "ray").chmod(0o755)
    (tmp_path / "failures").write_text(str(failures))
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RAY_AUTH_TOKEN="t", FAILURES=str(tmp_path / "failures"),
               CALLS=str(tmp_path / "calls"), DLTUNE_SUBMIT_WAIT_S=str(wait_s))
    done = subprocess.run(["bash", "examples/ray_job_submit.sh", "--submission-id", "j1", "--", "tune", "configs/quickstart_tune.yaml"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return done, (tmp_path / "calls").read_text().splitlines()


def test_submission_is_tried_again_while_the_head_has_no_job_agent(tmp_path: Path) -> None:
    done, calls = _submit(tmp_path, failures=1, wait_s=60)
    assert done.returncode == 0 and "submitted successfully" in done.stdout, done.stderr
    assert len(calls) == 2 and all("--submission-id j1" in call for call in calls)
    assert "no job agent up yet; trying again" in done.stderr


def test_submission_gives_up_on_a_head_whose_job_agent_never_comes(tmp_path: Path) -> None:
    done, calls = _submit(tmp_path, failures=100, wait_s=0)
    assert done.returncode == 1 and len(calls) == 1 and "No available agent" in done.stderr


def test_submit_script_refuses_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
    env.update(HOME=str(tmp_path), RAY_AUTH_TOKEN_PATH=str(tmp_path / "missing"))
    done = subprocess.run(["bash", "examples/ray_job_submit.sh", "--", "tune", "configs/quickstart_tune.yaml"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no Ray auth token" in done.stderr
