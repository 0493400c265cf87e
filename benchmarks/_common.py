"""Helpers every benchmark script shares: arguments, timing, medians, tables and JSON.

A benchmark script is run as ``python benchmarks/<name>.py [--quick]``; it prints a table and
writes ``benchmarks/results/<name>.json`` (``<name>-quick.json`` in quick mode, so a smoke
run never overwrites the full results). Import from it with ``from _common import ...``:
running a script puts ``benchmarks/`` on ``sys.path``.

Running this file itself does nothing (``make bench`` runs every ``benchmarks/*.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_DIR",
    "benchmark_args",
    "environment",
    "format_table",
    "map_jobs",
    "median",
    "print_table",
    "ratio",
    "stopwatch",
    "timed",
    "write_results",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def map_jobs(function: Callable, tasks: Sequence, jobs: int) -> list:
    """``[function(task) for task in tasks]``, in ``jobs`` spawned processes when jobs > 1.

    ``function`` must be a module-level function of the script (spawned workers import it).
    """
    if jobs <= 1:
        return [function(task) for task in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        return list(pool.map(function, tasks))


def benchmark_args(description: str, argv: Sequence[str] | None = None,
                   extra: Callable[[argparse.ArgumentParser], None] | None = None
                   ) -> argparse.Namespace:
    """Parse the flags every benchmark takes: ``--quick`` (a smoke run well under a minute)
    and ``--threads`` (torch intra-op threads, default 1 so timings compare across runs).

    ``extra(parser)`` may add the script's own flags.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: tiny data and few epochs (< 60 s); results are "
                             "written to <name>-quick.json")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    return args


def median(values: Iterable[float]) -> float:
    """Median of finite values (NaN when there are none)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.median(finite) if finite else math.nan


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is 0 or not finite."""
    if not math.isfinite(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


@contextmanager
def stopwatch():
    """``with stopwatch() as elapsed: ...`` then ``elapsed()`` is the wall-clock seconds of
    the block (while inside: so far)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def timed(func: Callable[[], Any], repeats: int = 1) -> tuple[Any, dict[str, Any]]:
    """Run ``func`` ``repeats`` times; return the last result and the timing:
    ``{"median_s", "times_s", "n"}``."""
    times, result = [], None
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return result, {"median_s": median(times), "times_s": times, "n": len(times)}


def _git(*args: str) -> str:
    """``git <args>``'s output in this checkout ("" without git)."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


#: The commit checked out when the script started: the code that ran, even if a commit lands
#: while a long run goes on.
_COMMIT_AT_START = _git("rev-parse", "--short", "HEAD")


def environment() -> dict[str, Any]:
    """Where and with what the benchmark ran (for the JSON): ``git_commit`` is the commit
    checked out when the script started (``git_commit_at_end`` is added when a later one
    was checked out by the time the results were written)."""
    import torch

    at_end = _git("rev-parse", "--short", "HEAD")
    commit = _COMMIT_AT_START or at_end
    # A result written from edited, uncommitted code cannot be reproduced from git_commit alone.
    uncommitted = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else None
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = math.nan
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "torch": torch.__version__,
        "platform": platform.platform(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": load, "git_commit": commit,
        "git_uncommitted_changes": uncommitted,
        **({"git_commit_at_end": at_end} if at_end != commit else {}),
    }


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(script: str, payload: Mapping[str, Any], quick: bool = False) -> Path:
    """Write ``payload`` plus :func:`environment` to ``benchmarks/results/<script>.json``
    (``<script>-quick.json`` when ``quick``); ``script`` is the caller's ``__file__`` or
    name."""
    name = Path(script).stem + ("-quick" if quick else "")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {"benchmark": Path(script).stem, "quick": bool(quick), **payload,
                "environment": environment()}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_plain(document), indent=2) + "\n")
    tmp.replace(path)
    return path


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 1e6):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                 title: str | None = None, digits: int = 4) -> str:
    """A plain-text table of ``rows`` (dicts), one column per key in ``columns``.

    Examples
    --------
    >>> print(format_table([{"model": "ode", "rmse": 0.1234567}], digits=3))
    model  rmse
    -----  -----
    ode    0.123
    """
    columns = list(columns) if columns is not None else list(dict.fromkeys(
        k for row in rows for k in row))
    cells = [[_cell(row.get(c), digits) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                title: str | None = None, digits: int = 4) -> None:
    """Print :func:`format_table` followed by a blank line, flushed (runs are long)."""
    print(format_table(rows, columns, title, digits) + "\n", flush=True)


if __name__ == "__main__":  # `make bench` runs every script here; this one has nothing to do.
    sys.exit(0)
