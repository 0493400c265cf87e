"""PhysioNet/Computing in Cardiology Challenge 2012: ICU stays, first 48 hours.

Each record is a CSV ``<RecordID>.txt`` with header ``Time,Parameter,Value`` and times
``HH:MM`` since ICU admission. The rows at ``00:00`` for ``RecordID``, ``Age``, ``Gender``,
``Height``, ``ICUType`` and ``Weight`` are the general descriptors (``-1`` = unknown); the 37
variables of :data:`PHYSIONET2012_VARIABLES` (``Weight`` among them) are time series, each
observed at its own irregular times. ``Outcomes-a.txt`` holds one row of outcomes per record.

The records are read as bytes (from a folder or, streaming, from a ``.tar.gz``), joined into
one buffer with a marker row before each record, and parsed by one call to the C CSV reader;
the full set A (4000 records, 1.76 M rows) loads in a few seconds.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from latode._params import Interval
from latode.datasets._common import check_number

__all__ = ["PHYSIONET2012_VARIABLES", "PHYSIONET2012_DESCRIPTORS", "load_physionet2012"]

#: The 37 time-varying variables, in the order of Rubanova et al.'s ``physionet.py``.
PHYSIONET2012_VARIABLES = (
    "Albumin", "ALP", "ALT", "AST", "Bilirubin", "BUN", "Cholesterol", "Creatinine",
    "DiasABP", "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "Mg", "MAP",
    "MechVent", "Na", "NIDiasABP", "NIMAP", "NISysABP", "PaCO2", "PaO2", "pH", "Platelets",
    "RespRate", "SaO2", "SysABP", "Temp", "TroponinI", "TroponinT", "Urine", "WBC", "Weight",
)
#: The general descriptors recorded at 00:00 (``Weight`` is also a time series).
PHYSIONET2012_DESCRIPTORS = ("Age", "Gender", "Height", "ICUType", "Weight")

_MARKER = "#record"
_NOT_UNKNOWN = ("In-hospital_death",)  # the only column where -1 cannot mean "unknown"


def _record_id(name: str) -> int | None:
    """The RecordID of a record file name such as ``set-a/132539.txt``, else None."""
    path = PurePosixPath(name)
    return int(path.stem) if path.suffix == ".txt" and path.stem.isdigit() else None


def _read_folder(root: Path, max_records: int | None) -> tuple[list, list[bytes]]:
    files = {}
    for file in root.rglob("*.txt"):
        record = _record_id(file.name)
        if record is not None:
            files[record] = file
    chosen = sorted(files)[:max_records]
    outcomes = sorted(root.glob("Outcomes*.txt")) or sorted(root.parent.glob("Outcomes*.txt"))
    return [(r, files[r].read_bytes()) for r in chosen], [f.read_bytes() for f in outcomes]


def _read_archive(archive: Path, max_records: int | None) -> tuple[list, list[bytes]]:
    records, outcomes = {}, []
    # "r|*" streams the members in order: no seeking, no extraction to disk.
    with tarfile.open(archive, mode="r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = PurePosixPath(member.name).name
            record = _record_id(name)
            if record is not None:
                records[record] = tar.extractfile(member).read()
            elif name.startswith("Outcomes") and name.endswith(".txt"):
                outcomes.append(tar.extractfile(member).read())
    if not outcomes:  # PhysioNet serves Outcomes-a.txt apart from the archive
        outcomes = [f.read_bytes() for f in sorted(archive.parent.glob("Outcomes*.txt"))]
    return [(r, records[r]) for r in sorted(records)[:max_records]], outcomes


def _parse_records(records: Iterable[tuple[int, bytes]], source: Path) -> pd.DataFrame:
    """Rows ``record, minutes, parameter, value`` of all records, in file order."""
    chunks = []
    for record, content in records:
        body = content.replace(b"\r", b"")
        if body.startswith(b"Time"):
            body = body.partition(b"\n")[2]
        chunks.append(b"0:0,%s,%d\n" % (_MARKER.encode(), record))
        chunks.append(body if body.endswith(b"\n") or not body else body + b"\n")
    # HH:MM -> two integer fields, so that the C parser reads hours and minutes directly.
    blob = b"".join(chunks).replace(b":", b",")
    try:
        rows = pd.read_csv(
            io.BytesIO(blob), header=None, names=["hour", "minute", "parameter", "value"],
            dtype={"hour": np.int64, "minute": np.int64, "parameter": "category",
                   "value": np.float64},
            engine="c",
        )
    except ValueError as error:
        raise ValueError(
            f"Could not parse the PhysioNet 2012 records in {source}: {error}. Each record must "
            "be a CSV with header 'Time,Parameter,Value' and times as HH:MM."
        ) from error
    marker = (rows["parameter"] == _MARKER).to_numpy()
    record_ids = rows["value"].where(marker).ffill().to_numpy(dtype=np.int64)
    frame = pd.DataFrame(
        {
            "record": record_ids,
            "minutes": rows["hour"].to_numpy() * 60 + rows["minute"].to_numpy(),
            "parameter": rows["parameter"].astype(str).to_numpy(),
            "value": rows["value"].to_numpy(),
        }
    )
    return frame[~marker].reset_index(drop=True)


def _static_frame(rows: pd.DataFrame, records: Sequence[int], outcomes: list[bytes]):
    at_admission = rows[(rows["minutes"] == 0) & rows["parameter"].isin(PHYSIONET2012_DESCRIPTORS)]
    static = (
        at_admission.groupby(["record", "parameter"], sort=False)["value"].first()
        .unstack("parameter")
        .reindex(index=pd.Index(records, name="unique_id"), columns=PHYSIONET2012_DESCRIPTORS)
    )
    static.columns.name = None
    if outcomes:
        table = pd.concat([pd.read_csv(io.BytesIO(o)) for o in outcomes])
        table = table.drop_duplicates("RecordID").set_index("RecordID").astype(float)
        static = static.join(table, how="left")
    unknown = [c for c in static.columns if c not in _NOT_UNKNOWN]
    static[unknown] = static[unknown].mask(static[unknown] == -1)
    for column in _NOT_UNKNOWN:
        if column in static and static[column].notna().all():
            static[column] = static[column].astype(np.int64)
    return static


def _check_variables(variables: Sequence[str] | str | None) -> tuple[str, ...]:
    if variables is None:
        return PHYSIONET2012_VARIABLES
    chosen = (variables,) if isinstance(variables, str) else tuple(variables)
    unknown = [v for v in chosen if v not in PHYSIONET2012_VARIABLES]
    if unknown or not chosen:
        raise ValueError(
            f"variables={list(chosen)!r} has names that are not time-varying PhysioNet 2012 "
            f"variables ({unknown!r}); choose from {list(PHYSIONET2012_VARIABLES)} or pass None."
        )
    return chosen


def load_physionet2012(
    path: str | os.PathLike,
    *,
    max_records: int | None = None,
    variables: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read PhysioNet 2012 challenge records from a folder or a ``.tar.gz``.

    Parameters
    ----------
    path : str or path-like
        The archive (``set-a.tar.gz``, read streaming without extracting), a folder that
        holds ``set-a/``, or the ``set-a/`` folder itself. Every ``<digits>.txt`` inside is a
        record. Outcomes come from ``Outcomes*.txt`` in the archive or folder, else beside it.
    max_records : int or None
        Load only the records with the ``max_records`` smallest RecordIDs.
    variables : sequence of str or None
        Time-varying variables to keep (default: all 37 of
        :data:`PHYSIONET2012_VARIABLES`, in that order).

    Returns
    -------
    series : pandas.DataFrame
        One row per (record, time with an observation): ``unique_id`` (int RecordID), ``ds``
        (``Timedelta`` since admission, minute resolution) and one float column per variable,
        NaN where not measured. Several values of a variable at the same minute (e.g. two
        ``Urine`` outputs) are averaged. A record with no time-varying observation (three in
        set A) has no row here but keeps its row in ``static``. The admission ``Weight``
        descriptor also counts as a ``Weight`` observation at ``ds = 0`` when known. Values
        are as recorded (a few ``Temp`` and ``Weight`` values of 0 or below are errors of the
        source data).
    static : pandas.DataFrame
        Indexed by ``unique_id`` (RecordID), one row per record: the descriptors ``Age``,
        ``Gender`` (0 female, 1 male), ``Height``, ``ICUType`` (1-4), ``Weight`` (at
        admission), then, when an ``Outcomes*.txt`` file is found, ``SAPS-I``, ``SOFA``,
        ``Length_of_stay``, ``Survival`` and ``In-hospital_death`` (0/1). Every ``-1``
        (unknown) becomes NaN, except in ``In-hospital_death``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When no record is found, a record cannot be parsed, or ``variables`` names an
        unknown variable.

    Notes
    -----
    Parameters outside the descriptors and the 37 variables (``RecordID``) are skipped.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (pathlib.Path(tmp) / "132539.txt").write_text(
    ...         "Time,Parameter,Value\\n00:00,RecordID,132539\\n00:00,Age,54\\n"
    ...         "00:00,Height,-1\\n00:07,HR,73\\n01:37,HR,77\\n01:37,Temp,35.1\\n")
    ...     series, static = load_physionet2012(tmp, variables=["HR", "Temp"])
    >>> series
       unique_id              ds    HR  Temp
    0     132539 0 days 00:07:00  73.0   NaN
    1     132539 0 days 01:37:00  77.0  35.1
    >>> static[["Age", "Height"]]
                Age  Height
    unique_id
    132539     54.0     NaN
    """
    source = Path(path)
    if max_records is not None:
        check_number(
            "load_physionet2012", "max_records", max_records, Interval(int, 1, None, closed="left")
        )
    chosen = _check_variables(variables)
    if not source.exists():
        raise FileNotFoundError(
            f"{source} does not exist; pass the set-a.tar.gz archive or the folder of records "
            "(download them from https://physionet.org/content/challenge-2012/)."
        )
    if source.is_dir():
        records, outcomes = _read_folder(source, max_records)
    else:
        try:
            records, outcomes = _read_archive(source, max_records)
        except tarfile.TarError as error:
            raise ValueError(
                f"{source} is neither a folder nor a readable tar archive ({error})."
            ) from error
    if not records:
        raise ValueError(f"No record files named <RecordID>.txt were found in {source}.")
    rows = _parse_records(records, source)
    record_ids = [r for r, _ in records]
    static = _static_frame(rows, record_ids, outcomes)

    unknown_weight = (rows["parameter"] == "Weight") & (rows["minutes"] == 0) & (
        rows["value"] == -1
    )
    kept = rows[rows["parameter"].isin(chosen) & ~unknown_weight]
    wide = (
        kept.groupby(["record", "minutes", "parameter"], sort=True)["value"].mean()
        .unstack("parameter")
        .reindex(columns=list(chosen))
    )
    series = pd.DataFrame(
        {
            "unique_id": wide.index.get_level_values("record").to_numpy(dtype=np.int64),
            "ds": pd.to_timedelta(wide.index.get_level_values("minutes").to_numpy(), unit="min"),
        }
    )
    for name in chosen:
        series[name] = wide[name].to_numpy(dtype=float)
    return series, static
