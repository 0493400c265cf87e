"""Read image/label files in the IDX format of MNIST (and Fashion-MNIST, EMNIST, KMNIST).

MNIST cannot be downloaded here, so latode does not ship it; a user who has the four files
(``train-images-idx3-ubyte`` ...; gzip-compressed ``.gz`` files are read as they are) loads
them with :func:`load_idx` and passes ``input_shape=(1, 28, 28)`` to the classifiers.

The format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte (``0x08``
unsigned byte, ``0x09`` signed byte, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
``0x0E`` float64), a byte with the number of dimensions, one big-endian uint32 per dimension,
then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np

__all__ = ["load_idx", "read_idx"]

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as handle:
        head = handle.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as handle:
        return handle.read()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed) into an array of its stored shape.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray
        Shape and dtype as stored (MNIST images: ``(n, 28, 28)`` uint8; labels: ``(n,)``).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not IDX (bad magic number, unknown type) or is truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No IDX file at {str(path)!r}.")
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise ValueError(
            f"{str(path)!r} is not an IDX file: it must start with two zero bytes and a type "
            f"byte in {{0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E}}; got {data[:4].hex()!r}."
        )
    dtype = np.dtype(_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{str(path)!r} is truncated: its header announces {ndim} "
                         f"dimensions but the file has {len(data)} bytes.")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{str(path)!r} holds {len(data) - header} bytes of values but its header "
            f"announces shape {shape} of {dtype.name} ({expected} bytes); the file is "
            "truncated or not IDX."
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def load_idx(
    images_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    *,
    flatten: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load an image file and its label file in the IDX (MNIST) format.

    Parameters
    ----------
    images_path : str or path-like
        Images, e.g. ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``.
    labels_path : str or path-like
        Labels, e.g. ``train-labels-idx1-ubyte(.gz)``: one value per image.
    flatten : bool, default=True
        Return images as rows ``(n, height * width)`` (what the classifiers take with
        ``input_shape=(1, height, width)``) instead of ``(n, height, width)``.

    Returns
    -------
    X : ndarray of shape (n, height * width) or (n, height, width)
        Pixel values as stored (uint8 0-255 for MNIST).
    y : ndarray of shape (n,)
        Labels as stored.

    Raises
    ------
    ValueError
        When a file is not IDX, the images are not 3-D, the labels not 1-D, or their counts
        differ.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "img").write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1,
    ...                                         0, 0, 0, 2, 7, 8, 9, 10]))
    >>> _ = (folder / "lab").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 3, 5]))
    >>> X, y = load_idx(folder / "img", folder / "lab")
    >>> X.tolist(), y.tolist()
    ([[7, 8], [9, 10]], [3, 5])
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"images_path {str(images_path)!r} holds an array of shape "
                         f"{images.shape}; IDX image files are 3-D (n, height, width).")
    if labels.ndim != 1:
        raise ValueError(f"labels_path {str(labels_path)!r} holds an array of shape "
                         f"{labels.shape}; IDX label files are 1-D (n,).")
    if len(images) != len(labels):
        raise ValueError(f"images_path has {len(images)} images but labels_path has "
                         f"{len(labels)} labels; pass the two files of the same split.")
    if flatten:
        images = images.reshape(len(images), -1)
    return images, labels
