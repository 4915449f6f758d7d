"""Every registered dataset: shapes, dtypes, metadata, balance, determinism; the hotel tables
against the book (written out here, independently of datasets/hotels.py); the MNIST loader's
md5 and IDX checks; the dataset file round trip; the plots."""

import gzip
import hashlib
import json
import struct
from functools import cache

import numpy as np
import pytest

import datasets
from datasets import Dataset, DatasetError, build, load, plots
from datasets import mnist as mnist_module

MNIST_DIR = mnist_module.configured_directory()
FULL_MNIST = MNIST_DIR is not None and not mnist_module.missing_files(MNIST_DIR)
NO_FULL_MNIST = (
    "dataset 'mnist' needs the four canonical IDX files, which are not on this machine: "
    f"set {mnist_module.DIR_ENV} to a folder holding them to run this test"
)

# name -> (task, n_train, n_test, n_features, class counts over train+test or None, seeded?)
EXPECTED = {
    "linear": ("binary", 800, 200, 2, None, True),  # flip_y makes the counts only near 500/500
    "moons": ("binary", 800, 200, 2, [500, 500], True),
    "circles": ("binary", 800, 200, 2, [500, 500], True),
    "sine": ("binary", 1920, 480, 2, [1200, 1200], True),
    "spiral": ("multiclass", 1200, 300, 2, [500, 500, 500], True),
    "blobs4": ("multiclass", 3200, 800, 2, [1000] * 4, False),  # the document's random states
    "blobs2": ("binary", 3200, 800, 2, [2000, 2000], False),
    "hotels-linear": ("regression", 8, 4, 1, None, False),
    "hotels": ("regression", 24, 8, 2, None, False),
    "hotels-hot": ("binary", 24, 8, 2, [16, 16], False),
    "hotels-category": ("multiclass", 24, 8, 2, [8, 14, 10], False),
    "mnist": ("multiclass", 60000, 10000, 784, None, False),
    "mnist10k": ("multiclass", 8000, 2000, 784, None, True),
}
STRATIFIED = {"linear", "moons", "circles", "sine", "spiral", "mnist10k"}  # sdls1's blobs split is not

# vidl, printed tables (distance mi, [rating,] price $), in the book's order.
BOOK_CH1_TRAIN = [[0.5, 146], [1.1, 149], [1.6, 140], [2.4, 134], [3.5, 127], [4.6, 110], [6.2, 112], [9.5, 81]]
BOOK_CH1_TEST = [[0.3, 156], [0.7, 168], [4.9, 116], [8.5, 99]]
BOOK_CH2_TRAIN = [
    [0.2, 3.5, 157], [0.2, 4.8, 155], [0.5, 3.7, 146], [0.7, 4.3, 168], [0.8, 2.7, 147], [1.5, 3.6, 136],
    [1.6, 2.6, 140], [2.4, 4.7, 134], [3.5, 4.2, 116], [3.5, 3.5, 127], [4.6, 2.8, 106], [4.6, 4.2, 110],
    [4.9, 3.8, 116], [6.2, 3.6, 112], [6.5, 2.4, 92], [8.5, 3.1, 99], [9.5, 2.1, 81], [9.7, 3.7, 92],
    [11.3, 2.9, 75], [14.6, 3.8, 108], [17.5, 4.6, 166], [18.7, 3.8, 188], [19.5, 4.4, 211], [19.8, 3.6, 207],
]  # fmt: skip
BOOK_CH2_TEST = [
    [0.3, 4.6, 156], [0.5, 4.2, 162], [1.1, 3.5, 149], [1.2, 4.7, 145], [2.7, 2.7, 123], [3.8, 4.1, 118],
    [7.3, 4.6, 82], [19.4, 4.8, 209],
]  # fmt: skip

T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
T10K_MD5 = ("9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")


def _skip_unavailable(name: str) -> None:
    if name == "mnist" and not FULL_MNIST:
        pytest.skip(NO_FULL_MNIST)


@cache
def _default(name: str) -> Dataset:
    """One build per dataset with its default parameters (read-only in the tests)."""
    return build(name)


@pytest.mark.parametrize("name", datasets.names())
def test_shapes_dtypes_and_metadata(name):
    _skip_unavailable(name)
    ds = _default(name)
    task, n_train, n_test, n_features, _, seeded = EXPECTED[name]
    assert ds.name == name and ds.task == task
    assert ds.X_train.shape == (n_train, n_features) and ds.X_test.shape == (n_test, n_features)
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    assert ds.X_train.dtype == np.float32 and ds.X_test.dtype == np.float32
    label_dtype = np.float32 if task == "regression" else np.int64
    assert ds.y_train.dtype == label_dtype and ds.y_test.dtype == label_dtype
    assert np.isfinite(ds.X_train).all() and np.isfinite(ds.X_test).all()
    m = ds.meta
    for key in ("source", "task", "class_names", "params", "seed", "split", "preprocessing", "reconstructed_labels"):
        assert key in m, f"{name}: metadata lacks {key!r}"
    assert m["source"].split()[0].rstrip(";") in {"adl1", "sdls1", "vidl", "mlf2"}
    assert m["preprocessing"] == []  # standardization / one-hot happen per experiment
    assert isinstance(m["reconstructed_labels"], bool)
    assert m["reconstructed_labels"] == (name in {"hotels-hot", "hotels-category"})
    assert m["split"].get("choice"), f"{name}: the split choice is not written down"
    assert (m["seed"] is not None) == seeded
    assert m["checksum"] == ds.checksum()
    json.dumps(m)  # the metadata file must be writable as JSON
    if task != "regression":
        k = len(m["class_names"])
        assert k >= 2 and (task == "binary") == (k == 2)
        for y in (ds.y_train, ds.y_test):
            assert y.min() >= 0 and y.max() < k


@pytest.mark.parametrize("name", [n for n in datasets.names() if EXPECTED[n][0] != "regression"])
def test_class_balance(name):
    _skip_unavailable(name)
    ds = _default(name)
    k = len(ds.meta["class_names"])
    train, test = np.bincount(ds.y_train, minlength=k), np.bincount(ds.y_test, minlength=k)
    assert (train > 0).all() and (test > 0).all(), f"{name}: a class is missing from a split"
    total = train + test
    expected = EXPECTED[name][4]
    if expected is not None:
        assert total.tolist() == expected
    elif name == "linear":
        assert np.abs(total - 500).max() <= 10
    elif name == "mnist10k":  # the official test set: 892-1135 images per digit
        assert total.sum() == 10000 and total.min() == 892 and total.max() == 1135
    elif name == "mnist":
        assert total.sum() == 70000
    if name in STRATIFIED:  # each class keeps its share in both parts
        np.testing.assert_allclose(test / test.sum(), train / train.sum(), atol=2.0 / test.sum())


@pytest.mark.parametrize("name", datasets.names())
def test_determinism(name):
    _skip_unavailable(name)
    first = _default(name)
    again = build(name)
    assert again.checksum() == first.checksum(), f"{name}: the same seed gave different data"
    other = build(name, seed=12345)
    if EXPECTED[name][5]:
        assert other.checksum() != first.checksum(), f"{name}: a different seed gave the same data"
        assert other.meta["seed"] == 12345
    else:  # fixed tables / canonical splits: the seed must change nothing
        assert other.checksum() == first.checksum()


def test_toy_data_follow_their_construction():
    sine = _default("sine")
    X = np.concatenate([sine.X_train, sine.X_test])
    y = np.concatenate([sine.y_train, sine.y_test])
    # class is the hump: odd humps (class 1) lie above the axis, even ones below, for the default 3 periods
    assert (X[y == 1, 1] > 0).all() and (X[y == 0, 1] < 0).all()
    spiral = _default("spiral")
    r = np.hypot(*spiral.X_train.T)
    assert r.max() <= 1.0 + 1e-6
    circles = _default("circles")
    r = np.hypot(*circles.X_train.T)
    assert r[circles.y_train == 1].mean() < 0.5 < r[circles.y_train == 0].mean()


def test_blobs_are_the_documents_own_data():
    """sdls1 prints its y_train labels ([1 3 3 ... 0 1 2]) and, for blobs2, its trained softmax's weights
    and bias with the test figures they give (loss 0.05136142261326313, accuracy 0.99): the document's
    make_blobs and split calls must give the same data, hence the same figures from those weights."""
    four = _default("blobs4")
    assert four.y_train[:3].tolist() == [1, 3, 3] and four.y_train[-3:].tolist() == [0, 1, 2]
    assert np.abs(np.concatenate([four.X_train, four.X_test])).max() < 20  # the document's +-20 grid holds it
    two = _default("blobs2")
    w = np.array([[0.18243906, -0.32536864], [0.80486184, 0.29774043]])
    b = np.array([1.4485976, -1.4485976])
    z = two.X_test.astype(np.float64) @ w + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert np.mean(p.argmax(axis=1) == two.y_test) == 0.99
    loss = -np.mean(np.log(p[np.arange(len(p)), two.y_test]))
    assert loss == pytest.approx(0.05136142261326313, rel=1e-6)  # the weights are printed to float32


@pytest.mark.parametrize("name", datasets.names())
def test_declared_sizes_match_the_built_dataset(name):
    """datasets.SIZES (what the catalogue's accuracy tolerances use) against the real splits."""
    _skip_unavailable(name)
    ds = _default(name)
    assert datasets.SIZES[name] == {"train": ds.meta["n_train"], "test": ds.meta["n_test"]}


def test_hotel_rows_equal_the_printed_tables():
    ch1_train, ch1_test = np.array(BOOK_CH1_TRAIN), np.array(BOOK_CH1_TEST)
    ds = _default("hotels-linear")
    np.testing.assert_array_equal(ds.X_train[:, 0], ch1_train[:, 0].astype(np.float32))
    np.testing.assert_array_equal(ds.y_train, ch1_train[:, 1].astype(np.float32))
    np.testing.assert_array_equal(ds.X_test[:, 0], ch1_test[:, 0].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, ch1_test[:, 1].astype(np.float32))
    ch2_train, ch2_test = np.array(BOOK_CH2_TRAIN), np.array(BOOK_CH2_TEST)
    ds = _default("hotels")
    np.testing.assert_array_equal(ds.X_train, ch2_train[:, :2].astype(np.float32))
    np.testing.assert_array_equal(ds.y_train, ch2_train[:, 2].astype(np.float32))
    np.testing.assert_array_equal(ds.X_test, ch2_test[:, :2].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, ch2_test[:, 2].astype(np.float32))
    for name in ("hotels-hot", "hotels-category"):  # same hotels, same order
        other = _default(name)
        np.testing.assert_array_equal(other.X_train, ds.X_train)
        np.testing.assert_array_equal(other.X_test, ds.X_test)


def test_hotels_linear_least_squares_matches_the_book():
    """docs/documents.md: OLS on the chapter-1 rows gives train MSE 16.37, test MSE 144.47."""
    ds = _default("hotels-linear")
    A = np.c_[ds.X_train.astype(np.float64), np.ones(len(ds.X_train))]
    w = np.linalg.lstsq(A, ds.y_train.astype(np.float64), rcond=None)[0]
    test_pred = np.c_[ds.X_test.astype(np.float64), np.ones(len(ds.X_test))] @ w
    assert np.mean((A @ w - ds.y_train) ** 2) == pytest.approx(16.37, abs=0.005)
    assert np.mean((test_pred - ds.y_test) ** 2) == pytest.approx(144.47, abs=0.005)


def test_hot_labels_agree_with_the_book():
    ds = _default("hotels-hot")
    assert ds.meta["class_names"] == ["no", "yes"]
    assert ds.y_train[:5].tolist() == [1, 1, 1, 1, 0]  # yes, yes, yes, yes, no
    assert int(ds.y_train.sum()) == 11 and len(ds.y_train) - int(ds.y_train.sum()) == 13
    assert ds.meta["reconstructed_labels"] is True and ds.meta["params"]["rule"]
    assert 0 < ds.y_test.sum() < len(ds.y_test)


def test_category_labels_agree_with_the_book():
    ds = _default("hotels-category")
    names = ds.meta["class_names"]
    assert sorted(names) == ["bronze", "gold", "silver"]
    assert [names[i] for i in ds.y_train[:5]] == ["silver", "gold", "silver", "gold", "bronze"]
    assert ds.meta["reconstructed_labels"] is True and ds.meta["params"]["rule"]


# ---- MNIST ------------------------------------------------------------------------------


def test_vendored_mnist_files_are_the_canonical_ones():
    for name, md5 in zip(T10K, T10K_MD5):
        path = mnist_module.VENDORED_DIR / name
        assert hashlib.md5(path.read_bytes()).hexdigest() == md5
    readme = (mnist_module.VENDORED_DIR / "README.md").read_text()
    for needle in ("CC BY-SA 3.0", "LeCun", "Cortes", "Burges", *T10K_MD5):
        assert needle in readme


def test_mnist10k_pixels_and_labels():
    ds = _default("mnist10k")
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0 and ds.X_train.max() == 1.0
    # every official test label is used exactly once: compare with the labels file read here
    raw = gzip.decompress((mnist_module.VENDORED_DIR / T10K[1]).read_bytes())
    assert struct.unpack(">II", raw[:8]) == (2049, 10000)
    official = np.frombuffer(raw, dtype=np.uint8, offset=8)
    np.testing.assert_array_equal(
        np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=10), np.bincount(official, minlength=10)
    )


@pytest.fixture
def t10k_copy(tmp_path):
    for name in T10K:
        (tmp_path / name).write_bytes((mnist_module.VENDORED_DIR / name).read_bytes())
    return tmp_path


def test_mnist_loader_reads_a_good_copy(t10k_copy):
    X, y = mnist_module.load_pair(t10k_copy, *T10K)
    assert X.shape == (10000, 784) and X.dtype == np.float32 and y.dtype == np.int64
    assert y[:5].tolist() == [7, 2, 1, 0, 4]  # the first five official test digits


def test_mnist_loader_rejects_a_file_with_one_byte_changed(t10k_copy):
    path = t10k_copy / T10K[0]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz.*9fb629c4189551a2d022fa330f9573f3"):
        mnist_module.mnist10k(directory=t10k_copy)


def test_mnist_loader_rejects_a_truncated_file(t10k_copy):
    path = t10k_copy / T10K[1]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz.*md5 expected"):
        mnist_module.mnist10k(directory=t10k_copy)


def test_mnist_loader_says_where_to_put_missing_files(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz.*not found in"):
        mnist_module.mnist(directory=tmp_path)
    monkeypatch.delenv(mnist_module.DIR_ENV, raising=False)
    for unset in (None, ""):  # an empty config value means "not configured", not the current folder
        with pytest.raises(DatasetError, match=f"pass directory=.*{mnist_module.DIR_ENV}"):
            mnist_module.mnist(directory=unset)


def _idx_gz(path, magic: int, dims: tuple[int, ...], payload: bytes) -> None:
    path.write_bytes(gzip.compress(struct.pack(f">I{len(dims)}I", magic, *dims) + payload))


def test_idx_parser_checks_magic_and_dims(tmp_path):
    good = tmp_path / "ok.gz"
    _idx_gz(good, 0x803, (2, 28, 28), bytes(range(256)) * 6 + bytes(32))
    a = mnist_module.read_idx(good, mnist_module.IMAGES_MAGIC)
    assert a.shape == (2, 28, 28) and a.dtype == np.uint8 and a[0, 0, 5] == 5
    with pytest.raises(DatasetError, match="magic number"):
        mnist_module.read_idx(good, mnist_module.LABELS_MAGIC)
    short = tmp_path / "short.gz"
    _idx_gz(short, 0x801, (10,), bytes(9))
    with pytest.raises(DatasetError, match="need 10 data bytes"):
        mnist_module.read_idx(short, mnist_module.LABELS_MAGIC)
    not_gz = tmp_path / "plain.gz"
    not_gz.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="cannot decompress"):
        mnist_module.read_idx(not_gz, mnist_module.LABELS_MAGIC)


# ---- dataset files, registry, bad input --------------------------------------------------


def test_save_load_round_trip(tmp_path):
    ds = _default("hotels-category")
    ds.save(tmp_path / "d.npz", tmp_path / "d.json")
    back = load(tmp_path / "d.npz")
    for k, a in ds.arrays().items():
        np.testing.assert_array_equal(getattr(back, k), a)
        assert getattr(back, k).dtype == a.dtype
    assert back.meta == json.loads(json.dumps(ds.meta))


def test_load_detects_a_corrupt_file(tmp_path):
    ds = _default("moons")
    npz, meta = tmp_path / "moons.npz", tmp_path / "moons.json"
    ds.save(npz, meta)
    edited = dict(ds.arrays())
    edited["y_test"] = 1 - edited["y_test"]  # readable, but not the data the metadata describes
    with open(npz, "wb") as f:
        np.savez(f, **edited)
    with pytest.raises(DatasetError, match="checksum"):
        load(npz)
    ds.save(npz, meta)
    good = npz.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # one byte of array data changed (the zip CRC or the checksum sees it)
    for bad in (bytes(flipped), good[: len(good) // 2], b"PK\x03\x04 garbage"):
        npz.write_bytes(bad)
        with pytest.raises(DatasetError, match="cannot read|checksum"):
            load(npz)


def test_build_rejects_unknown_names_and_parameters():
    with pytest.raises(DatasetError, match="known datasets"):
        build("mooons")
    with pytest.raises(DatasetError, match="takes no parameter"):
        build("moons", noize=0.1)
    with pytest.raises(DatasetError, match="multiple of"):
        build("sine", n_samples=2401)
    with pytest.raises(DatasetError, match=r"test_size must lie in \(0, 1\)"):
        build("blobs4", test_size=1.5)


# ---- plots -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", datasets.names())
def test_plot_writes_a_png(name, tmp_path):
    _skip_unavailable(name)
    path = plots.plot(_default(name), tmp_path / f"{name}.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plot_kinds_refuse_the_wrong_data(tmp_path):
    with pytest.raises(DatasetError, match="1-D or 2-D"):
        plots.scatter(_default("mnist10k"), tmp_path / "x.png")
    with pytest.raises(DatasetError, match="not square images"):
        plots.sample_grid(_default("moons"), tmp_path / "y.png")


def test_full_mnist_rejects_a_wrong_file_under_a_canonical_name(t10k_copy):
    """The test pair copied in as the training pair: right format, wrong files, so never used."""
    for src, dst in zip(T10K, ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")):
        (t10k_copy / dst).write_bytes((t10k_copy / src).read_bytes())
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz.*f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        mnist_module.mnist(directory=t10k_copy)


@pytest.mark.parametrize("name", [n for n in datasets.names() if n != "mnist"])
def test_declared_task_matches_the_built_dataset(name):
    assert datasets.TASK_OF[name] == datasets.build(name).task


def test_every_dataset_declares_its_task_and_sizes():
    assert set(datasets.TASK_OF) == set(datasets.names()) == set(datasets.SIZES)
