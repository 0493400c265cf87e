"""Atomic, pickle-free, checksummed checkpoints of a training run.

A checkpoint holds tensors and plain Python containers only, so it is read back with
``torch.load(..., weights_only=True)`` and never unpickles arbitrary objects. A training
checkpoint carries a checksum of its contents, verified when it is read: bytes flipped on
disk are an error, not a model that resumes from garbage.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latode.exceptions import CheckpointInUseError, InvalidCheckpointError

__all__ = ["FolderLock", "atomic_save", "checkpoint_difference", "fingerprint", "latode_kind",
           "read_checkpoint", "safe_load", "CHECKPOINT_NAME", "PREVIOUS_CHECKPOINT_NAME",
           "LOCK_NAME"]

#: The key under which :func:`atomic_save` stores the checksum of everything else.
CHECKSUM_KEY = "checksum"
#: A training run's checkpoint inside its ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"
#: The checkpoint of the epoch before the latest, resumed from when the latest is corrupted.
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"
#: Held by the running fit (see :class:`FolderLock`).
LOCK_NAME = "checkpoint.lock"


def fingerprint(value: Any) -> str:
    """A hex digest of ``value``'s contents: equal contents give equal digests.

    Reads tensors and numpy arrays by their bytes (with dtype and shape), dataclasses by
    their fields, containers element by element and other values by type and ``repr``; a
    float's ``repr`` round-trips, so no change goes unseen.

    Examples
    --------
    >>> import numpy as np
    >>> fingerprint(np.arange(3.0)) == fingerprint(np.arange(3.0))
    True
    >>> fingerprint(np.arange(3.0)) == fingerprint(-np.arange(3.0))
    False
    """
    digest = hashlib.blake2b(digest_size=16)
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
    elif isinstance(value, np.ndarray):
        digest.update(f"A{value.dtype.str}{value.shape}".encode())
        if value.dtype.hasobject:  # the bytes of an object array are pointers
            digest.update(repr([(type(v).__name__, v) for v in value.ravel().tolist()])
                          .encode())
        else:
            digest.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{type(value).__name__}{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(f"C{type(value).__name__}".encode())
        for field in dataclasses.fields(value):
            _feed(digest, field.name)
            _feed(digest, getattr(value, field.name))
    else:
        digest.update(f"V{type(value).__name__}:{value!r};".encode())


def atomic_save(obj: dict[str, Any], path: str | os.PathLike, *, checksum: bool = False,
                previous: str | os.PathLike | None = None) -> None:
    """Write ``obj`` to ``path`` so that a reader sees the old file or the new, never half.

    The data go to a temporary file in the same folder, are flushed to disk, and the file is
    renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows).

    Parameters
    ----------
    obj : dict
        Tensors and plain data only.
    path : path-like
    checksum : bool
        Store :func:`fingerprint` of ``obj`` under ``"checksum"``, which :func:`safe_load`
        verifies: a file corrupted after it was written is then refused, not read.
    previous : path-like or None
        Where the file ``path`` held until now is kept (renamed, so it is never half
        written either): a fallback should the new file be corrupted later.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**obj, CHECKSUM_KEY: fingerprint(obj)} if checksum else obj
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-blank line of ``error``'s message, or its type when it has none.

    torch's refusal of a file that needs unpickling opens with advice to load it anyway;
    latode never passes that on, since following it can run the file's code.
    """
    lines = [line for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if "weights only load failed" in lines[0].lower():
        return "it holds Python objects other than tensors and plain data"
    return lines[0][:limit]


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
    stored = obj.pop(CHECKSUM_KEY, None)
    # Saved models, and checkpoints of earlier versions, have none: they are read as is.
    if stored is not None and stored != fingerprint(obj):
        raise InvalidCheckpointError(
            f"{str(path)!r} is corrupted: its contents no longer match the checksum written "
            "with them (the file changed on disk or in a copy after it was written). Save "
            "the model again, or delete the file.")
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


def read_checkpoint(folder: str | os.PathLike, *,
                    warn: bool = True) -> dict[str, Any] | None:
    """The checkpoint in ``folder``, verified; ``None`` when there is none.

    When ``checkpoint.pt`` is missing, unreadable or fails its checksum, the previous
    epoch's ``checkpoint.prev.pt`` is read instead (with a ``RuntimeWarning`` when ``warn``).

    Raises
    ------
    InvalidCheckpointError
        When no checkpoint in ``folder`` can be read; the message says which files to delete.
    """
    folder = Path(folder)
    latest, previous = folder / CHECKPOINT_NAME, folder / PREVIOUS_CHECKPOINT_NAME
    if not latest.exists() and not previous.exists():
        return None
    try:
        return safe_load(latest, kind="checkpoint")
    except (FileNotFoundError, InvalidCheckpointError) as error:
        latest_error = error
    if not previous.exists():
        raise InvalidCheckpointError(
            f"The checkpoint in {str(folder)!r} cannot be resumed: {latest_error} Delete "
            f"{str(latest)!r}, or pass another checkpoint_dir, to start over.") from latest_error
    try:
        state = safe_load(previous, kind="checkpoint")
    except InvalidCheckpointError as error:
        raise InvalidCheckpointError(
            f"Neither checkpoint in {str(folder)!r} can be resumed. {latest_error} "
            f"{error} Delete {CHECKPOINT_NAME} and {PREVIOUS_CHECKPOINT_NAME} there, or "
            "pass another checkpoint_dir, to start over.") from error
    if warn:
        warnings.warn(
            f"{str(latest)!r} cannot be resumed ({latest_error}); resuming from the epoch "
            f"before, {str(previous)!r}.", RuntimeWarning, stacklevel=2)
    return state


def checkpoint_difference(state: dict[str, Any], tag: dict[str, Any], seed: int) -> str:
    """What tells the checkpoint ``state`` from the fit with ``tag`` and ``seed``; empty
    when nothing does, and the checkpoint may be resumed."""
    saved = state.get("tag")
    if "seed" not in state:
        return ("it was written by an earlier version of latode, which recorded neither the "
                "data's fingerprint nor the seed")
    if saved == tag:
        if state["seed"] == seed:
            return ""
        return (f"it was seeded with {state['seed']}, this fit with {seed} (random_state=None "
                "draws a new seed, so the validation split and random draws would differ; an "
                "int random_state makes a fit resumable)")
    if not isinstance(saved, dict):
        return f"its tag is {saved!r}"
    if saved.get("estimator") != tag.get("estimator"):
        return f"it is a {saved.get('estimator')}'s, this fit is a {tag.get('estimator')}'s"
    params, current = saved.get("params") or {}, tag.get("params") or {}
    changed = sorted(k for k in params.keys() | current.keys()
                     if params.get(k) != current.get(k))
    if changed:
        return "parameters differ: " + ", ".join(
            f"{k}={params.get(k, '(absent)')} there, {current.get(k, '(absent)')} here"
            for k in changed)
    if (saved.get("data"), saved.get("data_fingerprint")) != (tag.get("data"),
                                                               tag.get("data_fingerprint")):
        return "it was trained on other data (other series, times or values)"
    return f"its tag is {saved!r}, this fit's {tag!r}"


class FolderLock:
    """An exclusive lock on a folder: a file created atomically that names its owner.

    ``acquire`` creates ``folder/name`` with ``O_CREAT | O_EXCL`` (only one process can) and
    writes ``"<pid> <host>"`` into it; ``release`` removes it. A lock whose owner is a
    process of this host that no longer runs (a fit killed with ``kill -9``) is taken over.
    Creating the file also proves the folder writable, before any work is done.

    Parameters
    ----------
    folder : path-like
        Created (with its parents) when missing.
    name : str
        The lock file's name inside ``folder``.
    """

    def __init__(self, folder: str | os.PathLike, name: str = LOCK_NAME):
        self.folder = Path(folder)
        self.path = self.folder / name
        self.held = False

    def acquire(self) -> None:
        """Take the lock.

        Raises
        ------
        CheckpointInUseError
            When a running process holds it.
        PermissionError
            When the folder cannot be created or written.
        """
        owner = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(3):  # a stale lock taken over, then a race lost to another fit
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_owner(self.path)
                if holder is None or not _is_dead(holder):
                    raise CheckpointInUseError(self._in_use_message(holder)) from None
                self._take_over(holder)
                continue
            except OSError as error:
                raise PermissionError(
                    f"checkpoint_dir {str(self.folder)!r} is not a folder this process can "
                    f"write ({error.strerror or error}). Pass a writable folder, or "
                    "checkpoint_dir=None to train without checkpoints.") from error
            with os.fdopen(fd, "w") as handle:
                handle.write(owner)
            self.held = True
            return
        raise CheckpointInUseError(self._in_use_message(_read_owner(self.path)))

    def release(self) -> None:
        """Remove the lock file if this object holds it."""
        if self.held:
            self.held = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def _take_over(self, stale: tuple[int, str]) -> None:
        """Remove a lock left by a dead process, but never a live one: another process may
        have taken the stale lock over between our read and now, so the lock is first
        renamed aside (atomic; only one process succeeds) and checked again."""
        aside = self.path.with_name(f"{self.path.name}.{os.getpid()}.stale")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return  # another process removed it first
        if _read_owner(aside) != stale:
            try:  # we moved a live lock: put it back unless a third process locked since
                os.link(aside, self.path)
            except OSError:
                pass
        os.unlink(aside)

    def _in_use_message(self, holder: tuple[int, str] | None) -> str:
        who = "a fit being started" if holder is None else \
            f"process {holder[0]} on {holder[1]!r}"
        return (f"checkpoint_dir {str(self.folder)!r} is in use by {who} (lock file "
                f"{str(self.path)!r}). Two fits on one folder would overwrite each other's "
                "checkpoints: wait for that fit to end or pass another checkpoint_dir. If no "
                "fit is running there, delete the lock file.")

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def _read_owner(path: Path) -> tuple[int, str] | None:
    """The ``(pid, host)`` a lock file names, or ``None`` while it is being written."""
    try:
        pid, host = path.read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _is_dead(owner: tuple[int, str]) -> bool:
    """Whether the lock's owner has certainly ended: only a process of this host can be
    checked, and only on POSIX (``os.kill`` on Windows would terminate it)."""
    pid, host = owner
    if host != socket.gethostname() or os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    except OSError as error:
        return error.errno == errno.ESRCH
    return False
