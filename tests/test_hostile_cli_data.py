"""Hostile use of the data generators and the labkit command: garbage in gets a clear, early error
naming the argument (or the right result); nothing runs a notebook with a misspelled parameter,
nothing is lost, no file name explodes. None of these start a kernel."""
import csv
import math
import os
import time

import nbformat
import pytest
import torch
from torch.utils.data import TensorDataset

from labkit import cli
from labkit import data as D
from labkit.runner import ResultsLog, read_results_csv, run_jobs

NAN, INF = float("nan"), float("inf")


# -- data generators -----------------------------------------------------------------------------
BAD_DATA = [
    # (generator, kwargs, exception, the message must say)
    (D.synthetic_regression, dict(noise=NAN), ValueError, "noise must be a finite number >= 0, got nan"),
    (D.synthetic_regression, dict(noise=INF), ValueError, "noise must be a finite number >= 0, got inf"),
    (D.synthetic_regression, dict(n=NAN), TypeError, "n must be an int, got float nan"),
    (D.synthetic_regression, dict(n=1e3), TypeError, "n must be an int, got float 1000.0"),
    (D.synthetic_regression, dict(n=10**12), ValueError, "n must be an int in [2, 10000000], got 1000000000000"),
    (D.synthetic_regression, dict(n_features=10**6), ValueError, "n_features must be an int in [1, 10000]"),
    (D.synthetic_regression, dict(bias=NAN), ValueError, "bias must be a finite number, got nan"),
    (D.synthetic_regression, dict(bias="1"), TypeError, "bias must be a finite number, got str '1'"),
    (D.synthetic_regression, dict(scale=[NAN]), ValueError, "scale must be 1 finite positive numbers"),
    (D.synthetic_regression, dict(scale=[INF]), ValueError, "scale must be 1 finite positive numbers"),
    (D.synthetic_regression, dict(scale="big"), TypeError, "scale must be 1 finite positive numbers"),
    (D.synthetic_regression, dict(weights=[NAN]), ValueError, "weights must be 1 finite numbers"),
    (D.synthetic_regression, dict(standardize="yes"), TypeError, "standardize must be True or False, got str"),
    (D.synthetic_classification, dict(weights=[INF, 1]), ValueError, "weights must be 2 finite positive numbers"),
    (D.synthetic_classification, dict(weights=[0.5, NAN]), ValueError, "weights must be 2 finite positive numbers"),
    (D.synthetic_classification, dict(noise="0.1"), TypeError, "noise must be a finite number >= 0, got str '0.1'"),
    (D.synthetic_classification, dict(kind="blobs", n=3, n_classes=5), ValueError, "n_classes must be an int in [2, 3]"),
    (D.synthetic_classification, dict(kind="spiral"), ValueError, "unknown kind='spiral'"),
    (D.synthetic_classification, dict(val_fraction=NAN), ValueError, "val_fraction must be a finite number in [0, 1), got nan"),
    (D.synthetic_classification, dict(test_fraction=INF), ValueError, "test_fraction must be a finite number in [0, 1), got inf"),
    (D.synthetic_classification, dict(val_fraction=True), TypeError, "val_fraction must be a finite number in [0, 1), got bool"),
    (D.synthetic_classification, dict(batch_size=NAN), TypeError, "batch_size must be an int, got float nan"),
    (D.synthetic_classification, dict(batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
    (D.synthetic_classification, dict(seed=NAN), TypeError, "seed must be an int, got float nan"),
    (D.synthetic_classification, dict(seed=2**64), ValueError, "seed must be an int in [0, 9223372036854775807]"),
    (D.digits, dict(train_fraction=NAN), ValueError, "train_fraction must be a finite number in (0, 1], got nan"),
    (D.digits, dict(train_fraction=0), ValueError, "train_fraction must be a finite number in (0, 1], got 0"),
    (D.digits, dict(flat="yes"), TypeError, "flat must be True or False, got str 'yes'"),
    (D.digits, dict(standardize=None), TypeError, "standardize must be True or False, got NoneType"),
    (D.digits, dict(classes="01"), TypeError, "classes must be a list of digits from 0..9, got str"),
    (D.digits, dict(classes=[1, 1]), ValueError, "classes must be at least two different digits"),
    (D.digits, dict(seed=-1), ValueError, "seed must be an int in [0,"),
    (D.sequence, dict(length=NAN), TypeError, "length must be an int, got float nan"),
    (D.sequence, dict(horizon=10**9), ValueError, "horizon must be an int in [1, 10000]"),
    (D.sequence, dict(noise=NAN), ValueError, "noise must be a finite number >= 0, got nan"),
    (D.sequence, dict(task="sine", n=INF), TypeError, "n must be an int, got float inf"),
    (D.text_corpus, dict(block_size=0), ValueError, "block_size must be an int >= 1, got 0"),
    (D.text_corpus, dict(seed=1.5), TypeError, "seed must be an int, got float 1.5"),
    (D.text_corpus, dict(batch_size=-4), ValueError, "batch_size must be an int >= 1, got -4"),
    (D.text_topics, dict(per_topic=NAN), TypeError, "per_topic must be an int, got float nan"),
    (D.text_topics, dict(val_fraction=-0.1), ValueError, "val_fraction must be a finite number in [0, 1), got -0.1"),
    (D.mnist, dict(root=None), TypeError, "root must be a folder path (str or Path), got NoneType"),
    (D.mnist, dict(download="yes"), TypeError, "download must be True or False, got str 'yes'"),
]


@pytest.mark.parametrize("make,kwargs,error,message", BAD_DATA,
                         ids=[f"{m.__name__}-{'-'.join(k)}-{i}" for i, (m, k, _, _) in enumerate(BAD_DATA)])
def test_data_generators_refuse_garbage(make, kwargs, error, message):
    with pytest.raises(error) as info:
        make(**kwargs)
    assert message in str(info.value)


def test_numpy_numbers_are_accepted_where_python_numbers_are():
    import numpy as np

    bundle = D.synthetic_regression(n=np.int64(50), noise=np.float32(0.1), bias=np.float64(2.0),
                                    batch_size=np.int32(8), seed=np.int64(3), val_fraction=np.float64(0.2))
    assert len(bundle.train.dataset) == 30 and bundle.batch_size == 8


def test_make_loaders_refuses_garbage_datasets():
    with pytest.raises(TypeError, match="train must be a map-style Dataset"):
        D.make_loaders([1, 2, 3][0])
    with pytest.raises(ValueError, match="train is an empty dataset"):
        D.make_loaders(TensorDataset(torch.zeros(0, 2)), batch_size=4)
    with pytest.raises(TypeError, match="batch_size must be an int, got float nan"):
        D.make_loaders(TensorDataset(torch.zeros(4, 2)), batch_size=NAN)


def test_batch_larger_than_the_data_and_drop_last():
    bundle = D.synthetic_regression(n=20, batch_size=1000)
    (x, y), = list(bundle.train)                     # one short batch, all of it
    assert len(x) == len(bundle.train.dataset) == 12
    drop = torch.utils.data.DataLoader(bundle.train.dataset, batch_size=1000, drop_last=True, collate_fn=D.collate)
    assert list(drop) == []                          # as with any DataLoader: no batch at all


def test_out_of_range_index_is_an_index_error_as_before():
    ds = D.digits().train.dataset
    with pytest.raises(IndexError):
        ds.__getitems__([0, len(ds) + 5]).gather()
    with pytest.raises(IndexError):
        ds[len(ds) + 5]


# -- the labkit command: arguments ---------------------------------------------------------------
def notebook(path, parameters="quick = False\nlr = 0.1\nepochs = 3", tagged=True):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"] if tagged else []}))
    nb.cells.append(nbformat.v4.new_code_cell("raise SystemExit('this notebook must not run')"))
    nbformat.write(nb, path)
    return path


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_unknown_parameter_fails_a_sweep_before_anything_runs(tmp_path, capsys):
    nb = notebook(tmp_path / "mlp.ipynb")
    code, text = run_cli(["sweep", nb, "-p", "lrr", "0.5,1", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert "mlp.ipynb has no parameter 'lrr' (did you mean 'lr'?); its parameters are: quick, lr, epochs" in text
    assert not list((tmp_path).glob("out/*.ipynb"))


def test_unknown_parameter_fails_a_run_before_anything_runs(tmp_path, capsys):
    course = tmp_path / "course"
    course.mkdir()
    notebook(course / "01_a.ipynb", "quick = False\nseed = 0\ndevice = 'auto'")
    notebook(course / "02_b.ipynb", "quick = False\nseed = 0")
    code, text = run_cli(["run", course, "-p", "device", "cpu", "--out", tmp_path / "runs"], capsys)
    assert code == 2 and "02_b.ipynb has no parameter 'device'; its parameters are: quick, seed" in text
    assert not (tmp_path / "runs" / "01_a.ipynb").exists()        # not even the first one ran


def test_parameter_for_a_notebook_without_a_parameters_cell(tmp_path, capsys):
    nb = notebook(tmp_path / "plain.ipynb", tagged=False)
    code, text = run_cli(["sweep", nb, "-p", "lr", "1,2"], capsys)
    assert code == 2 and "plain.ipynb has no cell tagged 'parameters'" in text


@pytest.mark.parametrize("argv,message", [
    (["-p", "lr", "0.1", "-p", "lr", "0.2"], "parameter 'lr' is given twice"),
    (["-p", "not-a-name", "1"], "parameter name 'not-a-name' is not a valid Python identifier"),
    (["-p", "lr", "1,,2"], "parameter 'lr' has an empty value"),
    (["--workers", "0", "-p", "lr", "1"], "--workers must be >= 1, got 0"),
    (["--workers", "-3", "-p", "lr", "1"], "--workers must be >= 1, got -3"),
    (["--scheduler", "localhost:8786", "-p", "lr", "1"], "--scheduler must be a Dask scheduler address"),
    (["--quick", "-p", "quick", "True,False"], "--quick contradicts -p quick"),
    ([], "sweep needs at least one parameter"),
])
def test_sweep_argument_errors_exit_2_with_the_reason(tmp_path, capsys, argv, message):
    nb = notebook(tmp_path / "mlp.ipynb")
    code, text = run_cli(["sweep", nb, *argv, "--out", tmp_path / "out"], capsys)
    assert code == 2 and message in text, text


def test_run_refuses_a_repeated_parameter_and_a_non_notebook(tmp_path, capsys):
    nb = notebook(tmp_path / "01_a.ipynb")
    code, text = run_cli(["run", nb, "-p", "lr", "1", "-p", "lr", "2"], capsys)
    assert code == 2 and "parameter 'lr' is given twice" in text
    (tmp_path / "notes.txt").write_text("hello")
    code, text = run_cli(["run", tmp_path / "notes.txt"], capsys)
    assert code == 2 and "is not a notebook" in text


def test_unreachable_scheduler_is_a_clear_error_not_a_hang(tmp_path):
    pytest.importorskip("distributed")
    nb = notebook(tmp_path / "mlp.ipynb")
    job = dict(notebook=nb, output=tmp_path / "out.ipynb", parameters={"lr": 1})
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'.*dask scheduler"):
        run_jobs([job], scheduler="tcp://127.0.0.1:9", connect_timeout=1)
    assert time.perf_counter() - t0 < 60        # bounded by the timeout, not a hang
    assert not (tmp_path / "out.ipynb").exists()


# -- output names --------------------------------------------------------------------------------
def test_a_300_character_value_gives_a_bounded_unique_name(tmp_path):
    long_a, long_b = "a" * 300, "a" * 299 + "b"            # the same for the first 297 characters
    combos = [{"note": long_a, "lr": 0.1}, {"note": long_b, "lr": 0.1}, {"note": "short", "lr": 0.1}]
    paths = cli._sweep_outputs("03_mlp", combos, tmp_path)
    names = [p.name for p in paths]
    assert len(set(names)) == 3 and all(len(n) <= cli.MAX_NAME + len(".ipynb") for n in names)
    assert names[2] == "03_mlp__note=short__lr=0.1.ipynb"
    assert all(p.parent == tmp_path for p in paths)
    for p in paths:                                        # the file system takes them
        p.write_text("{}")


def test_a_huge_grid_gets_unique_bounded_names():
    grid = {"a": list(range(200)), "b": [f"x{i}" for i in range(200)]}
    combos = [{"a": a, "b": b} for a in grid["a"] for b in grid["b"]]
    names = [p.name for p in cli._sweep_outputs("nb", combos, cli.Path("out"))]
    assert len(names) == 40_000 and len(set(names)) == 40_000
    assert max(map(len, names)) <= cli.MAX_NAME + len(".ipynb")


@pytest.mark.parametrize("value", ["../../etc/passwd", "a/b", "C:\\x", "é ü 中", "\x00\n\t", "." * 5])
def test_hostile_values_stay_one_file_inside_the_output_folder(tmp_path, value):
    (path,) = cli._sweep_outputs("nb", [{"p": value}], tmp_path)
    assert path.parent == tmp_path and "/" not in path.name and "\\" not in path.name
    assert all(c.isascii() and c.isprintable() for c in path.name)
    path.write_text("{}")


def test_values_with_the_same_slug_get_different_names(tmp_path):
    combos = [{"p": v} for v in ("a b", "a/b", "a:b", "a-b")]
    names = [p.name for p in cli._sweep_outputs("nb", combos, tmp_path)]
    assert len(set(names)) == 4


# -- results.csv ---------------------------------------------------------------------------------
def _row(i, records, status="ok"):
    return {"notebook": "/x/nb.ipynb", "output": f"/o/{i}.ipynb", "parameters": {"lr": i},
            "status": status, "seconds": 1.5, "records": records, "error": "" if status == "ok" else "Boom, \"x\"\nline 2"}


def test_results_csv_holds_every_finished_row_at_every_moment(tmp_path):
    path = tmp_path / "results.csv"
    log = ResultsLog(path, ["lr"])
    assert path.read_text().splitlines() == ["lr,status,seconds,error,output"]   # exists from the start
    log.add(2, _row(2, {"acc": 0.5}))
    log.add(0, _row(0, {"acc": 0.7}))
    log.add(1, _row(1, {"acc": 0.6, "loss": NAN}, status="failed"))         # a new column: rewritten
    rows = list(csv.DictReader(open(path, newline="")))
    assert [r["lr"] for r in rows] == ["0", "1", "2"] and rows[0]["loss"] == ""
    assert rows[1]["error"] == "Boom, \"x\"\nline 2"
    log.add(3, _row(3, {"acc": 0.1}))                                         # appended
    back = read_results_csv(path, ["lr"])
    assert [r["parameters"]["lr"] for r in back] == [0, 1, 2, 3]
    assert math.isnan(back[1]["records"]["loss"]) and back[3]["records"] == {"acc": 0.1}
    assert not [p for p in os.listdir(tmp_path) if p != "results.csv"]      # no temporary files left


def test_results_csv_keeps_lists_commas_and_long_text(tmp_path):
    log = ResultsLog(tmp_path / "results.csv", ["note"])
    long = "v," * 200
    rows = [{"notebook": "nb", "output": "o", "parameters": {"note": long}, "status": "ok", "seconds": 0.1,
             "records": {"curve": [1, 2.5, None], "cfg": {"a": 1}}, "error": ""}]
    log.finish(rows)
    back = read_results_csv(tmp_path / "results.csv", ["note"])
    assert back[0]["parameters"]["note"] == long
    assert back[0]["records"] == {"curve": [1, 2.5, None], "cfg": {"a": 1}}


def test_a_corrupt_notebook_is_refused_by_name_before_running(tmp_path, capsys):
    bad = tmp_path / "01_bad.ipynb"
    bad.write_text("{ this is not json")
    code, text = run_cli(["run", bad, "-p", "lr", "1", "--out", tmp_path / "runs"], capsys)
    assert code == 2 and "cannot read the parameters of 01_bad.ipynb" in text
    code, text = run_cli(["sweep", bad, "-p", "lr", "1,2", "--out", tmp_path / "sweep"], capsys)
    assert code == 2 and "cannot read the parameters of 01_bad.ipynb" in text


def test_an_output_folder_that_is_a_file_is_an_error_not_a_traceback(tmp_path, capsys):
    nb = notebook(tmp_path / "mlp.ipynb")
    blocker = tmp_path / "out"
    blocker.write_text("I am a file")
    code, text = run_cli(["sweep", nb, "-p", "lr", "1", "--out", blocker], capsys)
    assert code == 2 and "labkit sweep: error:" in text and "Traceback" not in text
    assert blocker.read_text() == "I am a file"
