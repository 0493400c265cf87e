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

__all__ = ["atomic_save", "latode_kind", "safe_load"]


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


def _first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-blank line of ``error``'s message, or its type when it has none."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(error).__name__


def latode_kind(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[Any, dict]:
    """The ``"latode_kind"`` of a file written by :func:`atomic_save`, and its contents.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    InvalidCheckpointError
        When the file is empty, cannot be read as plain tensors and data, or is no dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No latode file at {str(path)!r}.")
    if path.stat().st_size == 0:  # torch raises a bare EOFError for it
        raise InvalidCheckpointError(
            f"{str(path)!r} is empty (0 bytes), not a latode file: a save or checkpoint write "
            "was cut off, or the file was truncated. Save the model again or delete it.")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for foreign files
        # e.g. pickle.UnpicklingError for objects outside the allow-list, KeyError or
        # EOFError for plain pickles and truncated files, RuntimeError for other formats.
        raise InvalidCheckpointError(
            f"{str(path)!r} is not a latode file (it could not be read as one: "
            f"{_first_line(error)}). Pass a file written by latode's save()."
        ) from error
    if not isinstance(obj, dict):
        raise InvalidCheckpointError(f"{str(path)!r} is not a latode file (found "
                                     f"{type(obj).__name__!r}).")
    return obj.get("latode_kind"), obj


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
    found, obj = latode_kind(path, map_location)
    if found != kind:
        raise InvalidCheckpointError(
            f"{str(path)!r} is not a latode {kind} file (found {found!r}). "
            f"Pass a file written by {kind}.save() / a checkpoint_dir of the same estimator."
        )
    return obj
