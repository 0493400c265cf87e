"""Faults the reliability tests inject, shared by the test folders."""

from __future__ import annotations

import contextlib
import os
import struct
import urllib.error
import urllib.request
import zipfile

__all__ = ["flip_tensor_bytes", "forward_request", "read_only_folder", "strip_times"]


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


def forward_request(handler, target: str, body: bytes) -> None:
    """Answer an ``http.server`` request (``handler``, whose ``body`` was read) with what the
    server at ``target`` answers to it: the heart of the proxies that stand in for a tracking
    server that fails or dies."""
    request = urllib.request.Request(target + handler.path, data=body or None,
                                     method=handler.command,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, payload = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


@contextlib.contextmanager
def read_only_folder(parent):
    """A new folder ``parent / "read_only"`` that cannot be written while the block runs;
    the test is skipped where permissions do not bind (as root)."""
    import pytest

    folder = parent / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("file permissions do not bind this user (root)")
        yield folder
    finally:
        folder.chmod(0o700)
