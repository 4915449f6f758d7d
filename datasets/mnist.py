"""MNIST from the four canonical IDX .gz files (mlf2, vidl ch.5).

Every file is md5-verified before it is parsed; a wrong, truncated or corrupt file is
rejected with a DatasetError naming it, never used. The project vendors the official
10,000-image test pair (datasets/data/mnist/, CC BY-SA 3.0), from which `mnist10k` is built
offline; the full 70,000-image `mnist` needs a directory holding all four files.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

from datasets.base import Dataset, DatasetError

MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FILES = (*TRAIN_FILES, *TEST_FILES)  # the four the full `mnist` needs
VENDORED_DIR = Path(__file__).resolve().parent / "data" / "mnist"
DIR_ENV = "FWBENCH_MNIST_DIR"
PIXELS = "28x28 uint8 / 255 -> 784 float32 features in [0, 1]"
SOURCE = "mlf2; vidl ch.5"
LICENCE = "CC BY-SA 3.0; Y. LeCun, C. Cortes, C. Burges"
CLASS_NAMES = [str(d) for d in range(10)]

# IDX: a 4-byte big-endian magic (0, 0, dtype code 0x08 = ubyte, number of dims), then one
# big-endian uint32 per dimension, then the data.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | Path) -> None:
    """Raise DatasetError unless the file's md5 is the canonical one for its name."""
    path = Path(path)
    expected = MD5.get(path.name)
    if expected is None:
        raise DatasetError(f"{path}: not a canonical MNIST file name; expected one of {', '.join(MD5)}")
    got = md5sum(path)
    if got != expected:
        raise DatasetError(
            f"{path} is not the canonical MNIST file (md5 expected {expected}, got {got}): it is truncated, "
            "corrupt or a different file; replace it with the original download and rerun"
        )


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Parse a gzipped IDX file with the given magic number into a uint8 array of its dims."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot decompress ({e}); replace it with the original download") from e
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: IDX header truncated ({len(raw)} bytes); replace it with the original download")
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise DatasetError(
            f"{path}: IDX magic number {got_magic:#010x}, expected {magic:#010x}; "
            "is it an images file given as labels (or the reverse)?"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DatasetError(
            f"{path}: IDX dims {dims} need {size} data bytes, the file has {len(raw) - header}; "
            "replace it with the original download"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_pair(directory: str | Path, images_name: str, labels_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Verify and parse one images/labels pair: X (n, 784) float32 in [0, 1], y (n,) int64."""
    directory = Path(directory)
    images_path, labels_path = directory / images_name, directory / labels_name
    for p in (images_path, labels_path):
        verify(p)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"{images_path}: images are {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if labels.max() > 9:
        raise DatasetError(f"{labels_path}: label {labels.max()} outside 0-9")
    X = images.reshape(len(images), 28 * 28).astype(np.float32) / np.float32(255.0)
    return X, labels.astype(np.int64)


def missing_files(directory: str | Path | None, names: tuple[str, ...] = FILES) -> list[str]:
    """The canonical files absent from directory (all of them when directory is None)."""
    if directory is None:
        return list(names)
    return [n for n in names if not (Path(directory) / n).is_file()]


def configured_directory(directory: str | Path | None = None) -> Path | None:
    """The directory argument, else the FWBENCH_MNIST_DIR environment variable, else None ("" counts as unset)."""
    if directory is not None and str(directory) != "":
        return Path(directory)
    env = os.environ.get(DIR_ENV)
    return Path(env) if env else None


def _require(directory: Path | None, names: tuple[str, ...], dataset: str) -> Path:
    missing = missing_files(directory, names)
    if directory is None:
        raise DatasetError(
            f"dataset {dataset!r} needs a directory holding {', '.join(names)}: pass directory=... "
            f"(in the pipeline: the config key mnist_dir) or set {DIR_ENV}; no download mirror is reachable from here"
        )
    if missing:
        raise DatasetError(
            f"dataset {dataset!r}: {', '.join(missing)} not found in {directory}; put the canonical MNIST files "
            f"(md5s in datasets/mnist.py) there, or point directory / {DIR_ENV} at the folder that holds them"
        )
    return directory


def _meta(**kw) -> dict:
    return {
        "source": SOURCE,
        "task": "multiclass",
        "class_names": CLASS_NAMES,
        "preprocessing": [],
        "reconstructed_labels": False,
        "licence": LICENCE,
        **kw,
    }


def mnist(directory: str | Path | None = None, seed: int | None = None) -> Dataset:
    """The full set, 60,000 train / 10,000 test, the canonical split.

    directory holds the four canonical .gz files (default: $FWBENCH_MNIST_DIR). The split
    is fixed by the files, so the seed has no effect.
    """
    d = _require(configured_directory(directory), FILES, "mnist")
    Xtr, ytr = load_pair(d, *TRAIN_FILES)
    Xte, yte = load_pair(d, *TEST_FILES)
    return Dataset(
        "mnist",
        Xtr,
        ytr,
        Xte,
        yte,
        meta=_meta(
            params={
                "files": {n: MD5[n] for n in FILES},
                "pixels": PIXELS,
            },
            seed=None,
            split={"choice": "the canonical split: train-* files train (60,000), t10k-* files test (10,000)"},
            notes=[f"read from {d}; every file md5-verified", "canonical split: a seed passed in is ignored"],
        ),
    )


def mnist10k(directory: str | Path = VENDORED_DIR, seed: int = 0, n_test: int = 2000) -> Dataset:
    """Offline MNIST: the official 10,000-image test pair, split 8,000 train / 2,000 test.

    The split is stratified by digit and seeded, so each digit keeps its share in both parts.
    """
    from sklearn.model_selection import train_test_split

    if not 10 <= n_test <= 9990:
        raise DatasetError(f"dataset 'mnist10k': n_test must lie in 10..9990, got {n_test}")
    d = _require(Path(directory), TEST_FILES, "mnist10k")
    X, y = load_pair(d, *TEST_FILES)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=n_test, random_state=seed, stratify=y)
    return Dataset(
        "mnist10k",
        Xtr,
        ytr,
        Xte,
        yte,
        meta=_meta(
            params={
                "files": {n: MD5[n] for n in TEST_FILES},
                "pixels": PIXELS,
                "vendored": str(Path(directory)) == str(VENDORED_DIR),
            },
            seed=seed,
            split={
                "test_size": n_test,
                "stratified": True,
                "shuffled": True,
                "split_seed": seed,
                "choice": f"our choice: the official t10k pair split {10000 - n_test}/{n_test}, stratified by "
                "digit, seeded (sklearn train_test_split)",
            },
            notes=[
                "an offline stand-in for mnist: the full 60k training files are not vendored and no mirror is "
                "reachable; its figures are not the documents' 60k/10k figures",
            ],
        ),
    )
