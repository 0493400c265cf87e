"""The benchmark scripts' helpers are tested as the scripts import them: from ``benchmarks/``,
which is not a package, put on ``sys.path`` once here for every test module beside it."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
