"""Every benchmark script runs end to end in its ``--quick`` mode.

The full runs take minutes to hours and are not part of the suite, so an API change that
breaks a script would otherwise surface only at its next full run. Each quick run is a real
run of the script (real fits, a real results file), in a fresh process as a user starts it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("[!_]*.py"))
PHYSIONET = BENCHMARKS.parents[1] / "shared" / "data" / "physionet2012" / "set-a.tar.gz"
#: Scripts whose quick mode reads PhysioNet 2012 set A from the shared data folder.
NEEDS_PHYSIONET = {"forecast", "physionet", "physionet_ranges", "physionet_shrink",
                   "covariates"}


def test_every_script_is_covered():
    assert {"forecast", "speed", "cnf", "odenet", "scale"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_quick_mode_runs_and_writes_its_results(script, tmp_path):
    if script in NEEDS_PHYSIONET and not PHYSIONET.exists():
        pytest.skip(f"{script}.py --quick reads {PHYSIONET}, which is not here")
    results = BENCHMARKS / "results" / f"{script}-quick.json"
    before = results.stat().st_mtime_ns if results.exists() else None
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--quick"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert results.exists() and results.stat().st_mtime_ns != before
    document = json.loads(results.read_text())
    assert document["quick"] is True and document["benchmark"] == script
