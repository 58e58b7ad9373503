"""lk.record / lk.records: conversion to plain JSON, in-process records, executed notebooks."""
import importlib
import math

import nbformat
import numpy as np
import pytest
import torch

recmod = importlib.import_module("labkit.record")  # the module (labkit.record is the function)
record, records = recmod.record, recmod.records


@pytest.fixture(autouse=True)
def fresh_records():
    saved = dict(recmod._RECORDS)
    recmod._RECORDS.clear()
    yield
    recmod._RECORDS.clear()
    recmod._RECORDS.update(saved)


def test_record_stores_in_process_and_last_value_wins():
    assert record("acc", 0.5) == 0.5
    record("loss", 1.25)
    record("acc", 0.75)
    assert records() == {"acc": 0.75, "loss": 1.25}
    snapshot = records()
    snapshot["acc"] = 0.0  # a copy: changing it must not change the records
    assert records()["acc"] == 0.75


@pytest.mark.parametrize("value, expected", [
    (np.float32(0.5), 0.5),
    (np.int64(7), 7),
    (np.bool_(True), True),
    (np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
    (torch.tensor(2.5), 2.5),
    (torch.tensor(3), 3),
    (torch.tensor([1.0, 2.0], requires_grad=True), [1.0, 2.0]),
    ((1, "a", None), [1, "a", None]),
    ({"scores": (np.float64(0.25), torch.tensor(1))}, {"scores": [0.25, 1]}),
])
def test_values_become_plain_json(value, expected):
    out = record("v", value)
    assert out == expected
    assert type(out) is type(expected)
    if isinstance(out, list) and out and not isinstance(out[0], list):
        assert [type(v) for v in out] == [type(v) for v in expected]


def test_scalar_types_are_python_types():
    assert type(record("a", np.float32(1.5))) is float
    assert type(record("b", torch.tensor(4))) is int
    assert type(record("c", np.bool_(False))) is bool
    assert math.isnan(record("d", float("nan")))


@pytest.mark.parametrize("value, type_name", [
    (object(), "object"),
    ({1, 2}, "set"),
    ([1, object()], "object"),
    (b"bytes", "bytes"),
])
def test_unsupported_values_raise_type_error_naming_name_and_type(value, type_name):
    with pytest.raises(TypeError, match=rf"'my_result.*{type_name}"):
        record("my_result", value)
    assert "my_result" not in records()


def test_dict_keys_must_be_strings():
    with pytest.raises(TypeError, match=r"'per_class'.*key 3.*int"):
        record("per_class", {3: 0.9})


def test_bad_names():
    with pytest.raises(TypeError, match="name must be a str"):
        record(3, 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        record("  ", 1.0)


def test_outside_a_kernel_nothing_is_displayed(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append(a))
    record("x", 1)
    assert shown == []


def _notebook_with(bundles, path):
    """An executed-looking notebook whose outputs are the given display bundles."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# results"))
    for bundle in bundles:
        cell = nbformat.v4.new_code_cell("lk.record(...)")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="training...\n"),
                        nbformat.v4.new_output("display_data", data=bundle)]
        nb.cells.append(cell)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def test_in_a_kernel_the_bundle_round_trips_through_a_notebook(monkeypatch, tmp_path):
    """What record() displays in a kernel is what records(path) reads back from the saved notebook."""
    import IPython.display

    shown = []
    monkeypatch.setattr(recmod, "_in_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    record("test_accuracy", np.float64(0.97))
    record("curve", [1.0, float("inf"), float("nan")])
    record("test_accuracy", 0.98)

    assert len(shown) == 3 and all(raw for _, raw in shown)
    first = shown[0][0]
    assert first[recmod.MIMETYPE] == {"name": "test_accuracy", "value": 0.97}
    assert first["text/plain"] == "test_accuracy = 0.97"
    assert shown[1][0][recmod.MIMETYPE]["value"] == [1.0, {"$float": "inf"}, {"$float": "nan"}]

    path = _notebook_with([bundle for bundle, _ in shown], tmp_path / "run.ipynb")
    got = records(path)
    assert list(got) == ["test_accuracy", "curve"]
    assert got["test_accuracy"] == 0.98  # last wins
    assert got["curve"][:2] == [1.0, math.inf] and math.isnan(got["curve"][2])


def test_records_of_a_hand_made_notebook(tmp_path):
    path = _notebook_with([
        {recmod.MIMETYPE: {"name": "loss", "value": 0.3}, "text/plain": "loss = 0.3"},
        {"text/plain": "something else"},
        {recmod.MIMETYPE: {"name": "config", "value": {"lr": 0.01, "layers": [64, 10]}},
         "text/plain": "config = ..."},
    ], tmp_path / "01_demo.ipynb")
    assert records(str(path)) == {"loss": 0.3, "config": {"lr": 0.01, "layers": [64, 10]}}
    assert records() == {}  # reading a notebook leaves this process's records alone


def test_records_missing_file_names_it(tmp_path):
    missing = tmp_path / "runs" / "nope.ipynb"
    with pytest.raises(FileNotFoundError, match="nope.ipynb"):
        records(missing)
