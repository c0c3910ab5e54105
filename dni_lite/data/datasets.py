"""Classification data sets for the MLP experiments, as standardised tensors.

* ``"mnist1d"`` (default): MNIST-1D, generated offline by the ``mnist1d``
  package (4000 train / 1000 test sequences of length 40, 10 classes). Small
  enough for a CPU, hard enough that training only the last layer is clearly
  worse than backprop, so synthetic gradients have real work to do.
* ``"digits"``: scikit-learn's 8x8 handwritten digits (shipped with it).
* ``"mnist"``: the real MNIST, read from the four IDX files. ``download_mnist``
  fetches them from a standard mirror on request, checks every file against
  its published SHA-256 and caches them under ``data/mnist/``; a partial or
  corrupt file fails its checksum and is never used.

Every split is fixed by a seed, and the standardisation (per-feature mean and
standard deviation) is fitted on the training split only.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from ..validate import check_choice, check_float, check_int

DATASETS = ("mnist1d", "digits", "mnist")

# The four MNIST archives with their published sizes and SHA-256 sums (the
# values torchvision, TensorFlow and others check against).
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", 9912422,
                     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train_labels": ("train-labels-idx1-ubyte.gz", 28881,
                     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "test_images": ("t10k-images-idx3-ubyte.gz", 1648877,
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", 4542,
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DEFAULT_MNIST_DIR = Path(__file__).resolve().parents[2] / "data" / "mnist"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass
class Dataset:
    """A standardised classification data set: float inputs, integer labels."""

    name: str
    x: Tensor
    y: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int

    @property
    def in_dim(self) -> int:
        return self.x.shape[1]


def load_dataset(name: str = "mnist1d", seed: int = 0, n_train: int | None = None,
                 mnist_dir: str | Path | None = None) -> Dataset:
    """Load a data set by name, standardised with training-split statistics.

    ``n_train`` keeps only the first ``n_train`` training examples (after a
    seeded shuffle), for quick runs. ``mnist_dir`` is where the MNIST IDX
    files are cached (default ``data/mnist/`` in the repository); MNIST is
    never downloaded here: call ``download_mnist()`` once first.
    """
    check_choice("name", name, DATASETS)
    check_int("seed", seed, 0)
    if n_train is not None:
        check_int("n_train", n_train, 1)
    if name == "mnist1d":
        x, y, x_test, y_test = _mnist1d()
    elif name == "digits":
        x, y, x_test, y_test = _digits(seed)
    else:
        x, y, x_test, y_test = _mnist(Path(mnist_dir) if mnist_dir else DEFAULT_MNIST_DIR)
    if n_train is not None:
        order = np.random.default_rng(seed).permutation(len(x))[:n_train]
        x, y = x[order], y[order]
    x, x_test = standardise(x, x_test)
    return Dataset(name, torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long),
                   torch.tensor(x_test, dtype=torch.float32),
                   torch.tensor(y_test, dtype=torch.long), int(max(y.max(), y_test.max())) + 1)


def minibatch_indices(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Shuffled minibatch indices, epoch after epoch, without each epoch's ragged end.

    Each epoch draws one permutation from ``generator``, so every experiment
    (and every worker process) seeded alike sees the same batches.
    """
    check_int("n", n, 1)
    batch_size = min(check_int("batch_size", batch_size, 1), n)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def sampled_batches(x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator
                    ) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless ``(x, y)`` minibatches drawn with replacement from ``generator``."""
    check_int("batch_size", batch_size, 1)
    while True:
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=generator)
        yield x[idx], y[idx]


def standardise(x: np.ndarray, x_test: np.ndarray, eps: float = 1e-6
                ) -> tuple[np.ndarray, np.ndarray]:
    """Scale both splits with the training split's per-feature mean and std.

    Fitting on the training split only keeps the test set unseen; constant
    features (std 0, e.g. MNIST's border pixels) are only centred.
    """
    check_float("eps", eps, 0.0, low_open=True)
    x = np.asarray(x, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std < eps, 1.0, std)
    return ((x - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _mnist1d() -> tuple[np.ndarray, ...]:
    return tuple(a.copy() for a in _mnist1d_cached())


@functools.lru_cache(maxsize=1)
def _mnist1d_cached() -> tuple[np.ndarray, ...]:
    # make_dataset generates the data offline from the default arguments
    # (their seed fixes it; about a second); mnist1d's get_dataset would download.
    from mnist1d.data import get_dataset_args, make_dataset
    d = make_dataset(get_dataset_args())
    return d["x"], d["y"], d["x_test"], d["y_test"]


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits (shipped with it): pixel rows and labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.data, d.target


def _digits(seed: int) -> tuple[np.ndarray, ...]:
    data, target = digits_arrays()
    order = np.random.default_rng(seed).permutation(len(target))
    n_test = len(order) // 5                   # a fixed, seeded 80/20 split
    test, train = order[:n_test], order[n_test:]
    return data[train], target[train], data[test], target[test]


def _mnist(directory: Path) -> tuple[np.ndarray, ...]:
    arrays = {}
    for key, (filename, _, sha256) in MNIST_FILES.items():
        path = directory / filename
        if not path.exists():
            raise FileNotFoundError(
                f"MNIST file {path} is missing. Run dni_lite.data.download_mnist() once while "
                f"online (it verifies each file's SHA-256), or use the offline data sets "
                f"name='mnist1d' (the default) or name='digits'.")
        if file_sha256(path) != sha256:
            raise ValueError(f"{path} does not match its published SHA-256 (partial or corrupt "
                             f"download?); delete it and run download_mnist() again, or use "
                             f"name='mnist1d' or name='digits'.")
        arrays[key] = read_idx(path)
    n = arrays["train_images"].shape[0]
    return (arrays["train_images"].reshape(n, -1), arrays["train_labels"],
            arrays["test_images"].reshape(arrays["test_images"].shape[0], -1),
            arrays["test_labels"])


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (gzipped when its name ends in .gz) into a numpy array.

    IDX: two zero bytes, a type code, the number of dimensions, then one
    big-endian uint32 size per dimension, then the data in row-major order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated inside its IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX header promises {expected} data bytes for shape "
                         f"{shape}, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as an IDX file (gzipped when the name ends in .gz); for tests."""
    path = Path(path)
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in _IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=").str
    if native not in codes:
        raise ValueError(f"array dtype {array.dtype} has no IDX type code")
    payload = bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)


def download_mnist(directory: str | Path | None = None, mirrors: tuple[str, ...] = MNIST_MIRRORS,
                   timeout: float = 60.0) -> Path:
    """Download the four MNIST IDX archives into ``directory`` and verify them.

    Files already present with the right SHA-256 are kept. A download goes
    to a temporary ``.part`` file and is moved into place only after its
    checksum matches, so a partial or corrupt file is never used. Offline,
    it raises ``ConnectionError`` naming the offline alternatives.
    """
    check_float("timeout", timeout, 0.0, low_open=True)
    if not mirrors:
        raise ValueError("mirrors must name at least one base URL")
    directory = Path(directory) if directory else DEFAULT_MNIST_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for filename, size, sha256 in MNIST_FILES.values():
        target = directory / filename
        if target.exists() and file_sha256(target) == sha256:
            continue
        errors = []
        for base in mirrors:
            part = target.with_name(filename + ".part")
            try:
                with urllib.request.urlopen(base + filename, timeout=timeout) as response, \
                        open(part, "wb") as f:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        f.write(chunk)
            except (urllib.error.URLError, OSError) as exc:
                errors.append(f"{base}: {exc}")
                part.unlink(missing_ok=True)
                continue
            if file_sha256(part) != sha256:
                errors.append(f"{base}: checksum mismatch ({part.stat().st_size} bytes, "
                              f"expected {size})")
                part.unlink(missing_ok=True)
                continue
            part.replace(target)
            break
        else:
            raise ConnectionError(
                f"could not download {filename} ({'; '.join(errors)}). Without internet use "
                f"load_dataset('mnist1d') (the default) or load_dataset('digits'), or copy the "
                f"four MNIST .gz files into {directory}.")
    return directory
