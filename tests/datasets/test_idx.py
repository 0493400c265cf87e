"""load_idx / read_idx against IDX files written here byte by byte."""

import gzip
import struct

import numpy as np
import pytest

from latode.datasets.idx import load_idx, read_idx

TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
              np.float32: 0x0D, np.float64: 0x0E}


def write_idx(path, array, compress=False):
    """An independent writer: magic, big-endian dims, big-endian values."""
    array = np.asarray(array)
    header = struct.pack(">BBBB", 0, 0, TYPE_CODES[array.dtype.type], array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(payload)
    return path


@pytest.fixture
def mnist_like(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 0, 9, 3, 1], dtype=np.uint8)
    return images, labels, tmp_path


@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_round_trips_images_and_labels(mnist_like, compress):
    images, labels, folder = mnist_like
    X, y = load_idx(write_idx(folder / "img", images, compress),
                    write_idx(folder / "lab", labels, compress))
    assert X.shape == (5, 12) and X.dtype == np.uint8
    np.testing.assert_array_equal(X, images.reshape(5, 12))  # C order: rows of pixels
    np.testing.assert_array_equal(y, labels)
    X3, _ = load_idx(folder / "img", folder / "lab", flatten=False)
    np.testing.assert_array_equal(X3, images)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64, np.int8])
def test_read_idx_decodes_big_endian_types(tmp_path, dtype):
    values = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype) * dtype(3)
    out = read_idx(write_idx(tmp_path / "v", values))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_bad_files_raise_value_errors_naming_the_problem(mnist_like):
    images, labels, folder = mnist_like
    img = write_idx(folder / "img", images)
    lab = write_idx(folder / "lab", labels)
    (folder / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(folder / "junk")
    (folder / "short").write_bytes(img.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(folder / "short")
    with pytest.raises(ValueError, match="5 images but labels_path has 4"):
        load_idx(img, write_idx(folder / "lab4", labels[:4]))
    with pytest.raises(ValueError, match="3-D"):
        load_idx(lab, lab)
    with pytest.raises(ValueError, match="1-D"):
        load_idx(img, img)
    with pytest.raises(FileNotFoundError, match="No IDX file"):
        load_idx(folder / "missing", lab)
