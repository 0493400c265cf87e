"""``benchmarks/_common.py``: what a results file says about the code that produced it."""

import subprocess
from pathlib import Path

import _common
import pytest

CHECKOUT = Path(_common.__file__).resolve().parents[1]


def head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=CHECKOUT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def test_the_commit_is_the_one_checked_out_when_the_script_started(monkeypatch):
    now = head()
    if not now:
        pytest.skip("not a git checkout")
    assert _common.environment()["git_commit"] == now
    assert "git_commit_at_end" not in _common.environment()
    # A commit landed while the run went on: the results name the code that ran, and the
    # commit checked out at the end beside it.
    monkeypatch.setattr(_common, "_COMMIT_AT_START", "0000000")
    env = _common.environment()
    assert env["git_commit"] == "0000000" and env["git_commit_at_end"] == now
