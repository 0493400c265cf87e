"""load_physionet2012 on tiny records written here, and on the real set A when shared/ exists."""

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latode.data.validation import validate_long_frame
from latode.datasets import PHYSIONET2012_VARIABLES, load_physionet2012

RECORDS = {
    # Admission weight known; two Urine values at 00:40 (averaged); CRLF line endings.
    140001: (
        "Time,Parameter,Value\r\n00:00,RecordID,140001\r\n00:00,Age,49\r\n00:00,Gender,1\r\n"
        "00:00,Height,182.9\r\n00:00,ICUType,4\r\n00:00,Weight,80\r\n00:10,HR,110\r\n"
        "00:40,Urine,180\r\n00:40,Urine,1300\r\n00:40,HR,108\r\n47:59,Weight,81.5\r\n"
    ),
    # Unknown height and admission weight (-1); no trailing newline.
    140002: (
        "Time,Parameter,Value\n00:00,RecordID,140002\n00:00,Age,76\n00:00,Gender,0\n"
        "00:00,Height,-1\n00:00,ICUType,2\n00:00,Weight,-1\n00:00,HR,90\n"
        "12:05,Lactate,2.5\n12:05,pH,7.31"
    ),
    140003: (
        "Time,Parameter,Value\n00:00,RecordID,140003\n00:00,Age,60\n00:00,Gender,1\n"
        "00:00,Height,170\n00:00,ICUType,3\n00:00,Weight,70\n01:00,Temp,37.5\n"
    ),
}
OUTCOMES = (
    "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"
    "140001,6,1,5,-1,0\n140002,-1,8,8,5,1\n140003,14,11,6,1637,0\n"
)


def _write_folder(root: Path) -> Path:
    (root / "set-a").mkdir(parents=True)
    for record, text in RECORDS.items():
        (root / "set-a" / f"{record}.txt").write_bytes(text.encode())
    (root / "Outcomes-a.txt").write_text(OUTCOMES)
    return root


def _write_archive(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        members = [(f"set-a/{r}.txt", t) for r, t in RECORDS.items()]
        for name, text in [*members, ("Outcomes-a.txt", OUTCOMES)]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def folder(tmp_path):
    return _write_folder(tmp_path / "physionet")


def test_parsing_times_duplicates_and_static(folder):
    series, static = load_physionet2012(folder)
    assert list(series.columns) == ["unique_id", "ds", *PHYSIONET2012_VARIABLES]
    assert series["unique_id"].tolist() == [140001] * 4 + [140002] * 2 + [140003] * 2
    one = series[series["unique_id"] == 140001].set_index("ds")
    minutes = pd.to_timedelta([0, 10, 40, 47 * 60 + 59], unit="min")
    assert list(one.index) == list(minutes)
    assert one.loc[pd.Timedelta(minutes=40), "Urine"] == 740.0  # mean of 180 and 1300
    assert one.loc[pd.Timedelta(minutes=40), "HR"] == 108.0
    assert one["Weight"].dropna().tolist() == [80.0, 81.5]
    # An unknown admission weight (-1) is no observation; HR at 00:00 is one.
    two = series[series["unique_id"] == 140002]
    assert two["ds"].tolist() == [pd.Timedelta(0), pd.Timedelta(hours=12, minutes=5)]
    assert two["Weight"].isna().all() and two["HR"].iloc[0] == 90.0
    assert two["pH"].iloc[1] == 7.31
    # Variables no tiny record measures stay as all-NaN columns.
    assert series["Albumin"].isna().all()
    validate_long_frame(series, target_cols=["HR", "Urine", "Weight", "Temp", "pH"])

    assert static.index.tolist() == [140001, 140002, 140003]
    assert np.isnan(static.loc[140002, "Height"]) and np.isnan(static.loc[140002, "Weight"])
    assert static.loc[140001, "Height"] == 182.9 and static.loc[140001, "Weight"] == 80.0
    assert static.loc[140001, "Gender"] == 1 and static.loc[140003, "ICUType"] == 3


def test_outcomes_join(folder):
    _, static = load_physionet2012(folder)
    assert static["In-hospital_death"].dtype == np.int64
    assert static["In-hospital_death"].tolist() == [0, 1, 0]
    assert np.isnan(static.loc[140001, "Survival"]) and np.isnan(static.loc[140002, "SAPS-I"])
    assert static.loc[140003, "Survival"] == 1637 and static.loc[140002, "SOFA"] == 8
    # Pointing at set-a/ itself finds Outcomes-a.txt beside it.
    _, inner = load_physionet2012(folder / "set-a")
    pd.testing.assert_frame_equal(inner, static)


def test_archive_reads_like_the_folder(folder, tmp_path):
    archive = _write_archive(tmp_path / "set-a.tar.gz")
    from_folder = load_physionet2012(folder)
    from_archive = load_physionet2012(archive)
    pd.testing.assert_frame_equal(from_archive[0], from_folder[0])
    pd.testing.assert_frame_equal(from_archive[1], from_folder[1])
    # PhysioNet serves the outcomes apart from the archive: found beside it.
    bare = tmp_path / "bare"
    bare.mkdir()
    with tarfile.open(bare / "set-a.tar.gz", "w:gz") as tar:
        tar.add(folder / "set-a", arcname="set-a")
    assert "In-hospital_death" not in load_physionet2012(bare / "set-a.tar.gz")[1]
    (bare / "Outcomes-a.txt").write_text(OUTCOMES)
    _, beside = load_physionet2012(bare / "set-a.tar.gz")
    pd.testing.assert_frame_equal(beside, from_folder[1])


def test_max_records_and_variables(folder):
    series, static = load_physionet2012(folder, max_records=2, variables=["Temp", "HR"])
    assert static.index.tolist() == [140001, 140002]
    assert list(series.columns) == ["unique_id", "ds", "Temp", "HR"]
    # Only times with a chosen variable remain.
    assert series["ds"].tolist() == pd.to_timedelta([10, 40, 0], unit="min").tolist()
    assert series["Temp"].isna().all()


def test_bad_input(folder, tmp_path):
    with pytest.raises(ValueError, match="variables"):
        load_physionet2012(folder, variables=["HeartRate"])
    with pytest.raises(ValueError, match="max_records"):
        load_physionet2012(folder, max_records=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_physionet2012(tmp_path / "nowhere")
    not_tar = tmp_path / "set-a.tar.gz"
    not_tar.write_text("hello")
    with pytest.raises(ValueError, match="tar archive"):
        load_physionet2012(not_tar)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="No record files"):
        load_physionet2012(empty)
    (folder / "set-a" / "140009.txt").write_text("Time,Parameter,Value\n00:xx,HR,80\n")
    with pytest.raises(ValueError, match="HH:MM"):
        load_physionet2012(folder)


# ---------------------------------------------------------------- the real set A
def _shared_archive() -> Path | None:
    repo = Path(__file__).resolve().parents[2]
    shared = Path(os.environ.get("LATODE_SHARED_DIR", repo / ".." / "shared"))
    archive = shared / "data" / "physionet2012" / "set-a.tar.gz"
    return archive if archive.is_file() else None


SET_A = _shared_archive()
needs_set_a = pytest.mark.skipif(
    SET_A is None,
    reason="PhysioNet 2012 set A lives in ../shared/data/physionet2012/set-a.tar.gz (or under "
    "$LATODE_SHARED_DIR), which this checkout does not have",
)


@needs_set_a
def test_set_a_first_records():
    series, static = load_physionet2012(SET_A, max_records=50)
    assert len(static) == 50 and static.index.is_monotonic_increasing
    assert static.index[0] == 132539
    assert set(series["unique_id"]) == set(static.index)
    assert list(series.columns[2:]) == list(PHYSIONET2012_VARIABLES)
    assert series["ds"].max() <= pd.Timedelta(hours=48)
    assert static["In-hospital_death"].isin([0, 1]).all()
    assert static["Age"].between(15, 91).all()
    validate_long_frame(series)


@needs_set_a
@pytest.mark.slow
def test_set_a_full():
    series, static = load_physionet2012(SET_A)
    # Three records of set A (e.g. 140501) hold descriptors only, no time series.
    assert len(static) == 4000 and series["unique_id"].nunique() == 3997
    assert set(series["unique_id"]) < set(static.index)
    assert static["In-hospital_death"].sum() == 554
    assert series.groupby("unique_id").size().median() == 72
    observed = int(series[list(PHYSIONET2012_VARIABLES)].notna().to_numpy().sum())
    assert 1_700_000 < observed < 1_760_000
