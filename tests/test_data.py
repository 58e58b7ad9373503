"""Datasets and loaders: shapes, seeding, splits, standardization, task correctness, IDX files, bad input."""
import gzip
import hashlib
import io
import struct

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from labkit import data as D


def rows(x):
    """The rows of a tensor as a set of bytes, to check that splits share no example."""
    x = x.reshape(len(x), -1).numpy()
    return {r.tobytes() for r in x}


def all_arrays(bundle):
    return [bundle.arrays(s) for s in D.SPLITS if getattr(bundle, s) is not None]


def first_batches(loader, k=3):
    return [x for (x, _), _ in zip(loader, range(k))]


# -- DataBundle and make_loaders -----------------------------------------------------------------
def test_make_loaders_validates_batch_size():
    ds = TensorDataset(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        D.make_loaders(ds, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int, got bool True"):
        D.make_loaders(ds, batch_size=True)
    with pytest.raises(TypeError, match="batch_size must be an int, got float 8.0"):
        D.synthetic_regression(batch_size=8.0)


def test_bundle_loaders_seeding_and_batch_size():
    a, b = D.synthetic_regression(seed=3, batch_size=50), D.synthetic_regression(seed=3, batch_size=50)
    assert a.batch_size == 50 and isinstance(a.train.generator, torch.Generator)
    assert not isinstance(a.val.sampler, torch.utils.data.RandomSampler)          # val keeps its order
    assert all(torch.equal(p, q) for p, q in zip(first_batches(a.train), first_batches(b.train)))
    other = D.synthetic_regression(seed=4, batch_size=50)
    assert not torch.equal(first_batches(a.train)[0], first_batches(other.train)[0])
    # the generator is the loader's own: its state can be saved and restored for a resume
    state = a.train.generator.get_state()
    first = first_batches(a.train)
    a.train.generator.set_state(state)
    assert all(torch.equal(p, q) for p, q in zip(first, first_batches(a.train)))


def test_with_batch_size_keeps_datasets_and_seed():
    data = D.digits(batch_size=64, seed=5)
    small = data.with_batch_size(8)
    assert small.batch_size == 8 and data.batch_size == 64
    assert small.train.dataset is data.train.dataset and small.test.dataset is data.test.dataset
    assert small.info == data.info and small.train.generator.initial_seed() == 5
    assert len(small.train) == -(-len(data.train.dataset) // 8)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got -1"):
        data.with_batch_size(-1)


def test_with_batch_size_on_a_hand_made_bundle():
    ds = TensorDataset(torch.arange(10.0)[:, None], torch.arange(10))
    bundle = D.DataBundle(DataLoader(ds, batch_size=2, shuffle=True), None, None, {})
    bigger = bundle.with_batch_size(5)
    assert bigger.batch_size == 5 and len(bigger.train) == 2 and bigger.val is None
    pairs = [(torch.full((2,), float(i)), i % 3) for i in range(6)]           # not a TensorDataset
    x, y = D.make_loaders(pairs, batch_size=4).arrays()
    assert x.shape == (6, 2) and torch.equal(x[:, 0], torch.arange(6.0)) and y.tolist() == [0, 1, 2, 0, 1, 2]


def test_arrays_returns_whole_splits_and_rejects_bad_split():
    data = D.synthetic_regression(n=500, n_features=3, val_fraction=0.2, test_fraction=0.0)
    x, y = data.arrays()
    assert x.shape == (400, 3) and y.shape == (400, 1) and x.dtype == y.dtype == torch.float32
    assert torch.equal(torch.cat([b[0] for b in DataLoader(data.train.dataset, batch_size=64)]), x)
    assert data.test is None
    with pytest.raises(ValueError, match="no test split"):
        data.arrays("test")
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'val', 'test'\), got 'valid'"):
        data.arrays("valid")


def test_repr_is_short():
    text = repr(D.text_corpus())
    assert text.startswith("DataBundle(task='language_model', train=") and len(text) < 200


# -- synthetic regression --------------------------------------------------------------------------
def test_regression_recovers_true_weights_and_splits_do_not_overlap():
    data = D.synthetic_regression(n=2000, n_features=3, noise=0.1, bias=-2.0, seed=1)
    parts = all_arrays(data)
    assert [len(x) for x, _ in parts] == [1200, 400, 400]
    assert not (rows(parts[0][0]) & rows(parts[1][0])) and not (rows(parts[0][0]) & rows(parts[2][0]))
    x, y = data.arrays()
    solution = torch.linalg.lstsq(torch.cat([x, torch.ones(len(x), 1)], 1), y).solution.squeeze(1)
    assert torch.allclose(solution[:3], data.info["true_weights"], atol=0.02)
    assert solution[3].item() == pytest.approx(-2.0, abs=0.02) and data.info["true_bias"] == -2.0
    residual = y.squeeze(1) - x @ data.info["true_weights"] - data.info["true_bias"]
    assert residual.std().item() == pytest.approx(0.1, rel=0.1)


def test_regression_is_seeded():
    a, b, c = (D.synthetic_regression(seed=s) for s in (0, 0, 1))
    assert torch.equal(a.arrays()[0], b.arrays()[0]) and torch.equal(a.arrays("val")[1], b.arrays("val")[1])
    assert not torch.equal(a.arrays()[0], c.arrays()[0])


def test_regression_scale_and_standardize_with_train_statistics():
    raw = D.synthetic_regression(n_features=2, scale=[1, 100], weights=[2.0, 0.03], seed=2)
    x, y = raw.arrays()
    assert x[:, 1].std() / x[:, 0].std() > 50
    std = D.synthetic_regression(n_features=2, scale=[1, 100], weights=[2.0, 0.03], seed=2, standardize=True)
    z, y2 = std.arrays()
    assert torch.equal(y, y2)
    mean, sd = x.double().mean(0), x.double().std(0, unbiased=False)
    assert torch.allclose(std.info["mean"].double(), mean, atol=1e-4)
    assert torch.allclose(z.double(), (x.double() - mean) / sd, atol=1e-4)
    zv, xv = std.arrays("val")[0].double(), raw.arrays("val")[0].double()
    assert torch.allclose(zv, (xv - mean) / sd, atol=1e-4)         # val uses the train statistics
    assert zv.mean(0).abs().max() > 1e-3                            # ... so it is not exactly centred
    # the recorded weights describe the same line in standardized units
    line = z @ std.info["true_weights"] + std.info["true_bias"]
    assert torch.allclose(line, x @ torch.tensor([2.0, 0.03]) + 1.0, atol=1e-3)


def test_regression_bad_input():
    with pytest.raises(ValueError, match=r"scale must be 2 finite positive numbers \(one per feature\), got \[1.0\]"):
        D.synthetic_regression(n_features=2, scale=[1])
    with pytest.raises(ValueError, match=r"weights must be 1 finite numbers \(one per feature\)"):
        D.synthetic_regression(weights=[1, 2])
    with pytest.raises(ValueError, match="noise must be a finite number >= 0, got -1"):
        D.synthetic_regression(noise=-1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(val_fraction=1.5), r"val_fraction must be a finite number in \[0, 1\), got 1.5"),
    (dict(test_fraction=-0.1), r"test_fraction must be a finite number in \[0, 1\), got -0.1"),
    (dict(val_fraction=0.5, test_fraction=0.5), "val_fraction \\+ test_fraction must be < 1"),
    (dict(n=1), r"n must be an int in \[2, 10000000\], got 1"),
    (dict(seed=-1), r"seed must be an int in \[0, 9223372036854775807\], got -1"),
])
def test_split_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        D.synthetic_regression(**kwargs)


# -- synthetic classification ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", D.CLASSIFICATION_KINDS)
def test_classification_kinds(kind):
    n_classes = 4 if kind == "blobs" else 2
    data = D.synthetic_classification(kind, n=400, n_classes=n_classes, seed=1)
    parts = all_arrays(data)
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    assert x.shape == (400, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [400 // n_classes] * n_classes
    assert torch.bincount(parts[1][1]).tolist() == [80 // n_classes] * n_classes     # stratified
    assert not rows(parts[0][0]) & rows(parts[2][0])
    assert data.info["n_classes"] == n_classes and data.info["task"] == "classification"
    again = D.synthetic_classification(kind, n=400, n_classes=n_classes, seed=1)
    assert torch.equal(again.arrays()[0], parts[0][0])
    assert not torch.equal(D.synthetic_classification(kind, n=400, n_classes=n_classes, seed=2).arrays()[0],
                           parts[0][0])


def test_xor_labels_follow_the_signs():
    x, y = D.synthetic_classification("xor", noise=0.0).arrays()
    assert torch.equal(y, (x[:, 0] * x[:, 1] < 0).long())


def test_class_imbalance_weights():
    data = D.synthetic_classification("moons", n=1000, weights=[0.95, 0.05])
    assert torch.bincount(data.arrays()[1]).tolist() == [570, 30]
    assert torch.bincount(data.arrays("test")[1]).tolist() == [190, 10]
    assert data.info["class_proportions"] == pytest.approx([0.95, 0.05])


def test_classification_bad_input():
    with pytest.raises(ValueError, match=r"unknown kind='spiral'; use one of \('moons', 'blobs'"):
        D.synthetic_classification("spiral")
    with pytest.raises(ValueError, match="n_classes must be 2 for kind='moons', got 3"):
        D.synthetic_classification("moons", n_classes=3)
    with pytest.raises(ValueError, match=r"weights must be 3 finite positive numbers \(class proportions, one per class\)"):
        D.synthetic_classification("blobs", n_classes=3, weights=[0.5, 0.5])


# -- digits -----------------------------------------------------------------------------------------
def test_digits_split_shapes_and_train_standardization():
    data = D.digits()
    parts = all_arrays(data)
    assert [len(x) for x, _ in parts] == [1079, 359, 359] and sum(len(x) for x, _ in parts) == 1797
    assert parts[0][0].shape[1:] == (64,) and parts[0][1].dtype == torch.int64
    assert data.info["input_shape"] == (64,) and data.info["n_classes"] == 10
    assert data.info["class_names"] == [str(d) for d in range(10)]
    assert not rows(parts[0][0]) & rows(parts[1][0]) and not rows(parts[0][0]) & rows(parts[2][0])
    assert torch.bincount(parts[1][1]).min() >= 34                    # stratified: every digit in val
    x = parts[0][0]
    assert x.mean(0).abs().max() < 1e-5 and torch.isfinite(torch.cat([p[0] for p in parts])).all()
    raw = D.digits(standardize=False)
    assert torch.allclose(raw.arrays()[0].mean(0), data.info["mean"], atol=1e-4)
    assert torch.allclose((raw.arrays("test")[0] - data.info["mean"]) / data.info["std"], parts[2][0], atol=1e-5)
    assert (data.info["std"] >= 1).all()                             # blank pixels do not divide by 0


def test_digits_images_and_seed():
    images = D.digits(flat=False, seed=1)
    assert images.arrays()[0].shape[1:] == (1, 8, 8) and images.info["input_shape"] == (1, 8, 8)
    assert images.info["mean"].shape == (1, 8, 8)
    assert torch.equal(images.arrays()[1], D.digits(seed=1).arrays()[1])
    assert not torch.equal(images.arrays()[1], D.digits(seed=2).arrays()[1])


def test_digits_classes_relabel_to_original_digits():
    raw = load_digits()
    digit_of = {row.astype(np.float32).tobytes(): t for row, t in zip(raw.data, raw.target)}
    data = D.digits(classes=[8, 3, 5], standardize=False)
    assert data.info["class_names"] == ["8", "3", "5"] and data.info["n_classes"] == 3
    total = 0
    for x, y in all_arrays(data):
        assert [digit_of[r.tobytes()] for r in x.numpy()] == [[8, 3, 5][label] for label in y.tolist()]
        total += len(y)
    assert total == int(np.isin(raw.target, [8, 3, 5]).sum())


def test_digits_train_fraction_keeps_val_and_test():
    full, tenth = D.digits(), D.digits(train_fraction=0.1)
    counts = torch.bincount(tenth.arrays()[1])
    assert counts.tolist() == [round(c * 0.1) for c in torch.bincount(full.arrays()[1]).tolist()]
    assert rows(tenth.arrays()[0]) <= rows(full.arrays()[0])
    for split in ("val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(full.arrays(split), tenth.arrays(split)))
    tiny = D.digits(classes=[0, 1], train_fraction=0.001)
    assert torch.bincount(tiny.arrays()[1]).tolist() == [1, 1]        # at least one per class


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(classes=[3]), ValueError, "classes must be at least two different digits from 0..9, got \\[3\\]"),
    (dict(classes=[1, 1]), ValueError, "at least two different digits"),
    (dict(classes=[0, 10]), ValueError, "at least two different digits"),
    (dict(train_fraction=0), ValueError, r"train_fraction must be a finite number in \(0, 1\], got 0"),
    (dict(train_fraction=1.5), ValueError, r"train_fraction must be a finite number in \(0, 1\], got 1.5"),
    (dict(val_fraction="0.2"), TypeError, r"val_fraction must be a finite number in \[0, 1\), got str '0.2'"),
])
def test_digits_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        D.digits(**kwargs)


# -- sequences --------------------------------------------------------------------------------------
def test_adding_problem_targets():
    data = D.sequence("adding", n=300, length=20)
    assert data.info["task"] == "regression" and data.info["input_shape"] == (20, 2)
    for x, y in all_arrays(data):
        assert x.shape[1:] == (20, 2) and y.shape[1:] == (1,) and x.dtype == y.dtype == torch.float32
        markers = x[..., 1]
        assert torch.equal(markers.sum(1), torch.full((len(x),), 2.0))
        assert torch.equal(markers[:, :10].sum(1), torch.ones(len(x)))   # one marker in each half
        assert torch.allclose((x[..., 0] * markers).sum(1, keepdim=True), y)


def test_parity_targets():
    data = D.sequence("parity", n=300, length=9)
    assert data.info["task"] == "classification" and data.info["n_classes"] == 2
    for x, y in all_arrays(data):
        assert x.shape[1:] == (9, 1) and y.dtype == torch.int64
        assert set(x.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(y, x.sum((1, 2)).long() % 2)


def test_sine_windows_follow_the_series_in_time_order():
    data = D.sequence("sine", n=200, length=16, horizon=3, noise=0.05)
    series = data.info["series"]
    assert len(series) == len(data.info["clean"]) == 200 + 16 + 3 - 1
    x, y = data.arrays()
    assert x.shape == (120, 16, 1) and y.shape == (120, 3)
    assert torch.equal(x[5, :, 0], series[5:21]) and torch.equal(y[5], series[21:24])
    start = data.info["split_starts"]["val"]
    xv, yv = data.arrays("val")
    assert start == 120 and torch.equal(xv[0, :, 0], series[start:start + 16])
    assert (series - data.info["clean"]).std().item() == pytest.approx(0.05, rel=0.2)
    assert not torch.equal(D.sequence("sine", seed=1).arrays()[0], D.sequence("sine", seed=2).arrays()[0])


def test_sequence_bad_input():
    with pytest.raises(ValueError, match=r"unknown task='copy'; use one of \('sine', 'adding', 'parity'\)"):
        D.sequence("copy")
    with pytest.raises(ValueError, match=r"length must be an int in \[2, 10000\], got 1"):
        D.sequence("adding", length=1)


# -- text ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus():
    return D.text_corpus(block_size=32, batch_size=4)


def test_text_corpus_vocabulary_and_round_trip(corpus):
    info = corpus.info
    text = info["text"]
    assert 400_000 < len(text) < 600_000 and info["vocab_size"] == len(set(text)) == len(info["chars"])
    snippet = text[1000:1200]
    ids = info["encode"](snippet)
    assert all(isinstance(i, int) for i in ids) and info["decode"](ids) == snippet
    assert info["decode"](torch.tensor(ids)) == snippet
    assert info["train_chars"] + info["val_chars"] == len(text)
    assert info["train_chars"] == len(text) - int(0.1 * len(text))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        info["encode"]("\u263a")
    for name, (start, stop) in list(info["topic_spans"].items())[:5]:
        assert text[start:stop] == info["topics"][name]


def test_text_corpus_windows_shift_by_one(corpus):
    x, y = corpus.arrays()
    decode = corpus.info["decode"]
    assert x.dtype == y.dtype == torch.int64 and x.shape == (corpus.info["train_chars"] - 32, 32)
    assert decode(x[0]) == corpus.info["text"][:32] and decode(y[0]) == corpus.info["text"][1:33]
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(x[1:1000], y[:999])     # every start position
    bx, by = next(iter(corpus.train))
    assert bx.shape == by.shape == (4, 32) and torch.equal(bx[:, 1:], by[:, :-1])
    xv, yv = corpus.arrays("val")
    n = corpus.info["train_chars"]
    assert decode(xv.reshape(-1)) == corpus.info["text"][n:n + xv.numel()]           # non-overlapping windows
    assert torch.equal(xv[:, 1:], yv[:, :-1]) and len(corpus.val.dataset) == (corpus.info["val_chars"] - 1) // 32
    assert corpus.test is None


def test_text_corpus_loader_is_seeded_and_checks_block_size():
    a, b, c = (D.text_corpus(block_size=8, seed=s) for s in (0, 0, 1))
    assert torch.equal(next(iter(a.train))[0], next(iter(b.train))[0])
    assert not torch.equal(next(iter(a.train))[0], next(iter(c.train))[0])
    with pytest.raises(ValueError, match="block_size=100000 leaves no window in the val split"):
        D.text_corpus(block_size=100_000)
    with pytest.raises(ValueError, match="block_size must be an int >= 1, got 0"):
        D.text_corpus(block_size=0)


def test_text_topics_labels_and_shared_vocabulary(corpus):
    data = D.text_topics(n_topics=4, snippet_len=64, seed=0)
    info = data.info
    assert info["chars"] == corpus.info["chars"] and info["n_classes"] == 4 == len(info["class_names"])
    parts = all_arrays(data)
    y = torch.cat([p[1] for p in parts])
    assert torch.bincount(y).tolist() == [info["per_topic"]] * 4                      # balanced
    for x, labels in parts:
        assert x.shape[1:] == (64,) and x.dtype == labels.dtype == torch.int64
        for snippet, label in zip(x[:20], labels[:20]):
            assert info["decode"](snippet) in corpus.info["topics"][info["class_names"][label]]
    assert not rows(parts[0][0]) & rows(parts[2][0])
    with pytest.raises(ValueError, match="n_topics=500 but only"):
        D.text_topics(n_topics=500)
    with pytest.raises(ValueError, match="per_topic must be an int in \\[1, "):
        D.text_topics(per_topic=10**6)


# -- IDX files and MNIST ------------------------------------------------------------------------------
def idx_bytes(array):
    code = {np.dtype("uint8"): 0x08, np.dtype("int32"): 0x0C}[array.dtype]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(root, n_train=30, n_test=10, compress=False):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 5), dtype=np.uint8),
              "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 2,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 5), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10}
    for name, array in arrays.items():
        payload = idx_bytes(array)
        if compress:
            (root / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (root / name).write_bytes(payload)
    return arrays


def test_read_idx_plain_and_gz(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    (tmp_path / "a.idx").write_bytes(idx_bytes(a))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(a)))
    for name in ("a.idx", "a.idx.gz"):
        out = D.read_idx(tmp_path / name)
        assert out.shape == (2, 3, 4) and np.array_equal(out, a)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="is not an IDX file"):
        D.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(idx_bytes(a)[:-3])
    with pytest.raises(ValueError, match=r"header says shape \(2, 3, 4\)"):
        D.read_idx(tmp_path / "short")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network must not be used")
    monkeypatch.setattr(D.urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_idx_files(tmp_path, no_network, compress):
    arrays = write_mnist(tmp_path, compress=compress)
    data = D.mnist(tmp_path, batch_size=8, val_fraction=0.2, flat=False)
    x, y = data.arrays()
    assert x.shape == (24, 1, 4, 5) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(data.val.dataset) == 6
    xt, yt = data.arrays("test")
    assert torch.equal(yt, torch.tensor(arrays["t10k-labels-idx1-ubyte"], dtype=torch.int64))
    expected = (arrays["t10k-images-idx3-ubyte"] / 255 - data.info["mean"]) / data.info["std"]
    assert torch.allclose(xt[:, 0].double(), torch.tensor(expected), atol=1e-5)
    assert abs(x.mean().item()) < 1e-5 and data.info["input_shape"] == (1, 4, 5)
    assert D.mnist(tmp_path).arrays()[0].shape == (26, 20)                           # flat by default


def test_mnist_missing_files_say_how_to_download(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="pass download=True"):
        D.mnist(tmp_path / "nowhere")


def test_mnist_download_is_opt_in_and_checksummed(tmp_path, monkeypatch):
    source = tmp_path / "source"
    source.mkdir()
    write_mnist(source, compress=True)
    files = {p.name[:-3]: p.read_bytes() for p in source.iterdir()}
    requested = []

    def fake_urlopen(url, timeout):
        requested.append(url)
        return io.BytesIO(files[url.rsplit("/", 1)[1][:-3]])

    monkeypatch.setattr(D.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(D, "MNIST_FILES", {k: hashlib.md5(v).hexdigest() for k, v in files.items()})
    data = D.mnist(tmp_path / "mnist", download=True)
    assert len(requested) == 4 and len(data.test.dataset) == 10
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(f"{k}.gz" for k in files)
    D.mnist(tmp_path / "mnist", download=True)
    assert len(requested) == 4                                          # present files are not fetched again
    monkeypatch.setattr(D, "MNIST_FILES", {k: "0" * 32 for k in files})
    with pytest.raises(OSError, match="checksum mismatch"):
        D.mnist(tmp_path / "other", download=True)
    assert not list((tmp_path / "other").iterdir())                     # nothing half-written is left


# -- batched fetching ----------------------------------------------------------------------------
BUNDLES = {
    "digits": lambda: D.digits(batch_size=64, seed=3),
    "digits_images": lambda: D.digits(batch_size=50, flat=False, seed=1),
    "synthetic_regression": lambda: D.synthetic_regression(n=203, n_features=3, batch_size=16, seed=2),
    "synthetic_classification": lambda: D.synthetic_classification("blobs", n=301, n_classes=3, batch_size=32),
    "sequence_sine": lambda: D.sequence("sine", n=150, batch_size=16, seed=4),
    "sequence_parity": lambda: D.sequence("parity", n=150, batch_size=16),
    "text_corpus": lambda: D.text_corpus(block_size=16, batch_size=64, val_fraction=0.45, test_fraction=0.5, seed=7),
    "text_topics": lambda: D.text_topics(n_topics=3, snippet_len=32, batch_size=8, seed=1),
}


def per_item_loader(loader, drop_last=False):
    """The loader as it was before batched fetching: one example at a time, then default_collate."""
    ds = TensorDataset(*loader.dataset.tensors)
    shuffle = isinstance(loader.sampler, torch.utils.data.RandomSampler)
    generator = None if loader.generator is None else torch.Generator().manual_seed(loader.generator.initial_seed())
    return DataLoader(ds, batch_size=loader.batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last)


def same_batches(a, b, epochs=2, limit=40):
    for _ in range(epochs):
        batches_a, batches_b = list(a), list(b)     # whole epochs: a sampler draws at its end too
        pairs = list(zip(batches_a, batches_b))
        assert len(pairs) == len(a) == len(b) == len(batches_b) and pairs
        for (xa, ya), (xb, yb) in pairs[:limit]:
            assert xa.dtype == xb.dtype and ya.dtype == yb.dtype
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("kind", sorted(BUNDLES))
def test_batched_fetching_gives_the_per_item_batches(kind):
    bundle = BUNDLES[kind]()
    assert isinstance(bundle.train.dataset, D.TensorData)
    assert isinstance(bundle.train.dataset, TensorDataset)           # still a TensorDataset: .tensors
    same_batches(bundle.train, per_item_loader(bundle.train))       # two epochs: the shuffle advances
    for split in ("val", "test"):
        loader = getattr(bundle, split)
        if loader is not None:
            same_batches(loader, per_item_loader(loader), epochs=1)
    smaller = bundle.with_batch_size(5)
    same_batches(smaller.train, per_item_loader(smaller.train), epochs=1)


def test_batched_fetching_with_drop_last_and_subset_and_wrappers():
    from torch.utils.data import Dataset, Subset

    bundle = D.digits(batch_size=64)
    ds = bundle.train.dataset
    assert torch.equal(ds[3][0], ds.tensors[0][3]) and len(ds[3]) == 2     # indexes as before
    gen = lambda: torch.Generator().manual_seed(11)
    fast = DataLoader(ds, batch_size=100, shuffle=True, drop_last=True, generator=gen(), collate_fn=D.collate)
    slow = DataLoader(TensorDataset(*ds.tensors), batch_size=100, shuffle=True, drop_last=True, generator=gen())
    same_batches(fast, slow)
    assert all(len(y) == 100 for _, y in fast)
    # Subset forwards __getitems__; a user's own DataLoader (default_collate) also gets the same batches
    sub = Subset(ds, list(range(0, len(ds), 3)))
    sub_plain = Subset(TensorDataset(*ds.tensors), sub.indices)
    same_batches(DataLoader(sub, batch_size=7, collate_fn=D.collate), DataLoader(sub_plain, batch_size=7))
    same_batches(DataLoader(sub, batch_size=7), DataLoader(sub_plain, batch_size=7))
    same_batches(DataLoader(ds, batch_size=7), DataLoader(TensorDataset(*ds.tensors), batch_size=7))

    class Noisy(Dataset):                        # a wrapper without __getitems__: per item, as before
        def __init__(self, base):
            self.base = base

        def __len__(self):
            return len(self.base)

        def __getitem__(self, i):
            x, y = self.base[i]
            return x + 1, y

    wrapped = D.make_loaders(Noisy(ds), batch_size=16, seed=2)
    x, y = next(iter(wrapped.train))
    assert x.shape == (16, 64) and y.shape == (16,)
    # a plain TensorDataset given to make_loaders is fetched in batches too, over the same tensors
    plain = TensorDataset(torch.arange(20.0)[:, None], torch.arange(20))
    made = D.make_loaders(plain, plain, batch_size=6, seed=9)
    assert isinstance(made.train.dataset, D.TensorData) and made.train.dataset.tensors[0] is plain.tensors[0]
    same_batches(made.train, per_item_loader(made.train))


def test_batched_fetching_under_distributed_sharding():
    from torch.utils.data import DistributedSampler

    bundle = D.synthetic_classification(n=257, batch_size=16, seed=5)
    for rank in range(2):
        shards = []
        for ds, collate in ((bundle.train.dataset, D.collate), (TensorDataset(*bundle.train.dataset.tensors), None)):
            sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=5)
            kwargs = {} if collate is None else {"collate_fn": collate}
            shards.append(DataLoader(ds, batch_size=16, sampler=sampler, **kwargs))
        same_batches(*shards, epochs=1)


def test_make_loaders_refuses_what_is_not_a_dataset():
    with pytest.raises(TypeError, match="train must be a map-style Dataset"):
        D.make_loaders(None)
    with pytest.raises(TypeError, match="val must be a map-style Dataset"):
        D.make_loaders(TensorDataset(torch.zeros(3, 1)), val=5)
    with pytest.raises(ValueError, match="train is an empty dataset"):
        D.make_loaders(TensorDataset(torch.zeros(0, 1)))


def test_batched_fetching_takes_negative_indices_like_indexing():
    ds = D.digits().train.dataset
    x, y = ds.__getitems__([-1, 0, -2]).gather()
    assert torch.equal(x, torch.stack([ds[-1][0], ds[0][0], ds[-2][0]])) and torch.equal(y, ds.tensors[1][[-1, 0, -2]])
