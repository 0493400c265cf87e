"""Atomic, pickle-free checkpoints of a training run.

A checkpoint holds tensors and plain Python containers only, so it is read back with
``torch.load(..., weights_only=True)`` and never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from latode.exceptions import InvalidCheckpointError

__all__ = ["atomic_save", "safe_load"]


def atomic_save(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``obj`` to ``path`` so that a reader sees the old file or the new, never half.

    The data go to a temporary file in the same folder, are flushed to disk, and the file is
    renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safe_load(path: str | os.PathLike, *, kind: str, map_location: Any = "cpu") -> dict:
    """Load a latode file written by :func:`atomic_save`, refusing anything else.

    Parameters
    ----------
    path : path-like
    kind : str
        The value the file's ``"latode_kind"`` entry must have (e.g. ``"checkpoint"`` or the
        estimator's class name).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    InvalidCheckpointError
        When the file is not a latode file of that kind, or would need to unpickle objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No latode file at {str(path)!r}.")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for foreign files
        # e.g. pickle.UnpicklingError for objects outside the allow-list, KeyError or
        # EOFError for plain pickles and truncated files, RuntimeError for other formats.
        raise InvalidCheckpointError(
            f"{str(path)!r} is not a latode {kind} file (it could not be read as one: "
            f"{str(error).splitlines()[0][:160]}). Pass a file written by latode's save()."
        ) from error
    if not isinstance(obj, dict) or obj.get("latode_kind") != kind:
        found = obj.get("latode_kind") if isinstance(obj, dict) else type(obj).__name__
        raise InvalidCheckpointError(
            f"{str(path)!r} is not a latode {kind} file (found {found!r}). "
            f"Pass a file written by {kind}.save() / a checkpoint_dir of the same estimator."
        )
    return obj
