"""labkit.prep: the messy CSV, the image folder and its dataset, label noise, saved bundles."""
import numpy as np
import pandas as pd
import pytest
import torch

from labkit import prep


def test_messy_table_has_the_promised_faults(tmp_path):
    path = prep.messy_table(tmp_path / "t.csv", seed=3, missing=0.1, duplicates=0.2, outliers=0.05)
    df = pd.read_csv(path, na_values=["?"])
    assert len(df) == 569 + round(0.2 * 569) and df.duplicated().sum() == round(0.2 * 569)
    assert "?" in path.read_text()                                   # some gaps are written as ?
    assert 0.05 < df["texture"].isna().mean() < 0.15 and df["radius"].isna().sum() == 0
    assert df["scanner"].nunique() > 8 and df["scanner"].str.strip().str.upper().nunique() == 8
    assert (df["area"] > 10 * df["area"].median()).sum() >= 5
    assert set(df["diagnosis"]) == {"malignant", "benign"}
    again = pd.read_csv(prep.messy_table(tmp_path / "u.csv", seed=3, missing=0.1, duplicates=0.2, outliers=0.05),
                        na_values=["?"])
    pd.testing.assert_frame_equal(df, again)                         # deterministic given seed


def test_clean_table_scanner_offsets_are_positive():
    df = prep.clean_table(seed=0)
    numeric = df.drop(columns=["scanner", "diagnosis"])
    assert (numeric >= 0).all().all() and df["scanner"].nunique() == 8
    means = df.groupby("scanner")["radius"].mean()
    assert means.max() - means.min() > df["radius"].std()           # the scanner matters


@pytest.mark.parametrize("kwargs, match", [({"missing": 0.7}, "missing"), ({"duplicates": -0.1}, "duplicates"),
                                           ({"seed": -1}, "seed"), ({"outliers": "many"}, "outliers")])
def test_messy_table_rejects_bad_input(tmp_path, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        prep.messy_table(tmp_path / "t.csv", **kwargs)


def test_image_folder_round_trip_matches_torchvision_layout(tmp_path):
    images = np.random.default_rng(0).random((7, 5, 4))
    labels = np.array([2, 0, 1, 2, 0, 1, 1])
    root = prep.write_image_folder(tmp_path / "imgs", images, labels, class_names=["cat", "dog", "eel"])
    (root / "eel" / "notes.txt").write_text("not an image")
    ds = prep.ImageFolder(root, transform=prep.to_tensor)
    assert ds.classes == ["cat", "dog", "eel"] and ds.class_to_idx == {"cat": 0, "dog": 1, "eel": 2}
    assert len(ds) == 7 and ds.targets == sorted(labels.tolist()) and ds.imgs == ds.samples
    x, y = ds[0]
    assert x.shape == (1, 5, 4) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    first_cat = int(np.flatnonzero(labels == 0)[0])
    assert torch.allclose(x[0], torch.tensor(images[first_cat], dtype=torch.float32), atol=1 / 255)
    ds2 = prep.ImageFolder(root, transform=prep.to_tensor, target_transform=lambda t: t * 10)
    assert ds2[len(ds2) - 1][1] == 20
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 1, 5, 4) and yb.tolist() == [0, 0, 1, 1]


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        prep.ImageFolder(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no class folders"):
        prep.ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError, match="hold no image files"):
        prep.ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="shape"):
        prep.write_image_folder(tmp_path, np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        prep.write_image_folder(tmp_path, np.full((1, 2, 2), 3.0), [0])


def test_flip_labels_rate_and_classes():
    y = np.repeat(np.arange(5), 40)
    noisy = prep.flip_labels(y, 0.25, num_classes=5, seed=1)
    assert (noisy != y).sum() == 50 and noisy.min() >= 0 and noisy.max() <= 4
    assert (prep.flip_labels(y, 0.0) == y).all()
    with pytest.raises(ValueError, match="rate"):
        prep.flip_labels(y, 1.5)


def test_save_and_load_bundle_reproduce_predictions(tmp_path):
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(0).normal(size=(20, 3))
    scaler = StandardScaler().fit(x)
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    folder = prep.save_bundle(tmp_path / "b", scaler, net, n_in=3, classes=["a", "b"])
    steps, loaded, meta = prep.load_bundle(folder, lambda m: torch.nn.Linear(m["n_in"], len(m["classes"])))
    assert meta["classes"] == ["a", "b"] and "torch" in meta["versions"] and not loaded.training
    inputs = torch.tensor(steps.transform(x), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), net(torch.tensor(scaler.transform(x), dtype=torch.float32)))
    (folder / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="model.pt"):
        prep.load_bundle(folder, lambda m: torch.nn.Linear(3, 2))
