"""Faults the reliability tests inject, shared by the test folders."""

from __future__ import annotations

import struct
import zipfile

__all__ = ["flip_tensor_bytes", "strip_times"]


def strip_times(history):
    """A fit's history without its wall-clock ``epoch_time`` (the rest must repeat)."""
    return [{k: v for k, v in r.items() if k != "epoch_time"} for r in history]


def flip_tensor_bytes(path, n_bytes=40):
    """Invert ``n_bytes`` inside the largest tensor's storage of a torch archive, leaving
    the archive's structure intact (torch reads such a file without complaint)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        entry = max((e for e in archive.infolist() if "/data/" in e.filename),
                    key=lambda e: e.file_size)
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26:
                                                          entry.header_offset + 30])
    start = entry.header_offset + 30 + name_length + extra_length
    for i in range(min(n_bytes, entry.file_size)):
        data[start + i] ^= 0xFF
    path.write_bytes(bytes(data))
