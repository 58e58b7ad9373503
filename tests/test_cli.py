"""The labkit command: parameters, `run`, `sweep`, the HTML report and `doctor`.

The papermill tests execute tiny notebooks written into tmp_path (eight executions in all:
each starts a kernel, a few seconds apiece).
"""
import csv
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from labkit import cli
from labkit.report import PLOTLY_MIMETYPE, PlotlyToHTML, sweep_figure, write_html_report

recmod = importlib.import_module("labkit.record")
REPO = Path(__file__).resolve().parents[1]


def has_python3_kernel():
    from jupyter_client.kernelspec import KernelSpecManager

    return "python3" in KernelSpecManager().find_kernel_specs()


def needs_kernel(test):
    """Marks a test that executes notebooks with papermill: slow, and skipped without a kernel."""
    skip = pytest.mark.skipif(
        not has_python3_kernel(),
        reason="papermill needs a 'python3' Jupyter kernel: python -m ipykernel install --user")
    return pytest.mark.slow(skip(test))


@pytest.fixture
def kernel_env(monkeypatch):
    """Kernels (started by papermill in worker processes) import this checkout of labkit."""
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(REPO) + (os.pathsep + path if path else ""))
    monkeypatch.delenv("LABKIT_QUICK", raising=False)


def write_notebook(path, *sources, parameters="quick = False\nx = 1\nscale = 1"):
    """A notebook with a papermill `parameters` cell followed by code cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nb, path)
    return path


TINY = """\
import os
import labkit
if x == 3:
    raise ValueError(f"x must not be 3, got {x}")
labkit.record("y", x * 2 * scale)
labkit.record("quick", quick)
labkit.record("env_quick", os.environ.get("LABKIT_QUICK", ""))
labkit.record("cwd", os.getcwd())
"""

PLOT = """\
from IPython.display import display
display({"application/vnd.plotly.v1+json": {"data": [{"type": "scatter", "x": [1, 2], "y": [3, 4]}],
                                              "layout": {"title": {"text": "tiny plot"}}},
         "text/plain": "Figure"}, raw=True)
"""


# --------------------------------------------------------------------------------------------
# Parameters and notebook discovery (no kernel needed)


def test_parse_value_matches_papermill():
    from papermill.cli import _resolve_type

    for text in ["True", "False", "None", "3", "-2", "1_000", "0.5", "1e-3", "nan", "inf",
                 "adam", "true", "", "3.0.1", "0x10"]:
        ours, theirs = cli.parse_value(text), _resolve_type(text)
        assert type(ours) is type(theirs) and (ours == theirs or ours != ours), text


def test_parse_parameters_and_grid():
    assert cli.parse_parameters([["lr", "0.1"], ["epochs", "3"], ["opt", "sgd"]]) == \
        {"lr": 0.1, "epochs": 3, "opt": "sgd"}
    assert cli.parse_parameters(None) == {}
    assert cli.parse_grid([["lr", "1e-3,1e-2"], ["batch_size", "32, 128"], ["amp", "True"]]) == \
        {"lr": [0.001, 0.01], "batch_size": [32, 128], "amp": [True]}
    with pytest.raises(ValueError, match="'bad-name' is not a valid Python identifier"):
        cli.parse_parameters([["bad-name", "1"]])
    with pytest.raises(ValueError, match="'lr' is given twice"):
        cli.parse_grid([["lr", "1"], ["lr", "2"]])
    with pytest.raises(ValueError, match="'lr' has an empty value in '1,,2'"):
        cli.parse_grid([["lr", "1,,2"]])
    with pytest.raises(ValueError, match="at least one parameter"):
        cli.parse_grid([])


def test_find_notebooks_in_order_without_checkpoints(tmp_path):
    for name in ["02_b.ipynb", "01_a.ipynb", "notes.ipynb", "10_c.ipynb", "03_x-checkpoint.ipynb"]:
        (tmp_path / name).write_text("{}")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "01_a-checkpoint.ipynb").write_text("{}")
    found = cli.find_notebooks([tmp_path])
    assert [p.name for p in found] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    # An explicit file is taken as given, whatever its name.
    assert cli.find_notebooks([tmp_path / "notes.ipynb"]) == [tmp_path / "notes.ipynb"]
    with pytest.raises(FileNotFoundError, match="missing.ipynb"):
        cli.find_notebooks([tmp_path / "missing.ipynb"])


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "missing.ipynb")]) == 2
    assert "missing.ipynb" in capsys.readouterr().err
    nb = write_notebook(tmp_path / "01_t.ipynb", "pass")
    assert cli.main(["sweep", str(nb), "-p", "x", "1,,2"]) == 2
    assert "empty value" in capsys.readouterr().err
    assert cli.main(["run", str(nb), "--quick", "-p", "quick", "False"]) == 2
    assert "--quick contradicts" in capsys.readouterr().err
    for bad in ["0", "1.5", "soon"]:  # argparse: a timeout is a whole number of seconds
        with pytest.raises(SystemExit):
            cli.main(["run", str(nb), "--timeout", bad])
        assert "--timeout: must be a whole number of seconds" in capsys.readouterr().err


def test_sweep_output_names_encode_parameters_and_stay_unique(tmp_path):
    combos = [{"lr": 0.001, "opt": "a b"}, {"lr": 0.001, "opt": "a/b"}]
    names = [p.name for p in cli._sweep_outputs("03_mlp", combos, tmp_path)]
    assert names[0] == "03_mlp__lr=0.001__opt=a-b.ipynb"
    assert len(set(names)) == 2


def test_error_line_is_the_last_meaningful_line():
    from papermill.exceptions import PapermillExecutionError

    exc = PapermillExecutionError(1, 2, "1/0", "ZeroDivisionError", "division by zero",
                                  ["\x1b[31mTraceback...\x1b[0m", "ZeroDivisionError: division by zero"])
    assert cli.error_line(exc) == "ZeroDivisionError: division by zero"
    assert cli.error_line(RuntimeError("Kernel died\n\n")) == "RuntimeError: Kernel died"


# --------------------------------------------------------------------------------------------
# HTML: report pages and sweep figures (no kernel needed)


def _executed_notebook_with_plot(path, html=None):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("lk.show(fig)", execution_count=1)
    data = {PLOTLY_MIMETYPE: {"data": [{"type": "bar", "x": ["a"], "y": [1], "name": "</script>"}],
                              "layout": {"title": {"text": "bars"}}},
            "text/plain": "Figure"}
    if html:
        data["text/html"] = html
    cell.outputs = [nbformat.v4.new_output("display_data", data=data),
                    nbformat.v4.new_output("display_data", data={
                        recmod.MIMETYPE: {"name": "acc", "value": 0.875}, "text/plain": "acc = 0.875"})]
    nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_plotly_outputs_become_divs_and_html_outputs_are_kept(tmp_path):
    nb = nbformat.read(_executed_notebook_with_plot(tmp_path / "a.ipynb"), as_version=4)
    nb, _ = PlotlyToHTML().preprocess(nb, {})
    html = nb.cells[0].outputs[0].data["text/html"]
    assert '<div id="labkit-plot-' in html and "Plotly.newPlot(" in html
    assert "</script>\"" not in html and "<\\/script>" in html  # the trace name can't end the script
    nb = nbformat.read(_executed_notebook_with_plot(tmp_path / "b.ipynb", html="<b>own</b>"), as_version=4)
    nb, _ = PlotlyToHTML().preprocess(nb, {})
    assert nb.cells[0].outputs[0].data["text/html"] == "<b>own</b>"


def test_write_html_report(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    ok = _executed_notebook_with_plot(runs / "01_plot.ipynb")
    missing = runs / "02_never_written.ipynb"
    summary = [{"status": "ok", "seconds": 1.5, "records": {"acc": 0.875}, "error": ""},
               {"status": "failed", "seconds": 0.1, "records": {}, "error": "NoSuchKernel: <nope>"}]
    index = write_html_report([ok, missing], runs, summary)

    assert index == runs / "index.html"
    text = index.read_text()
    assert '<a href="01_plot.html">01_plot</a>' in text
    assert "acc = 0.875" in text and "NoSuchKernel: &lt;nope&gt;" in text
    assert "02_never_written" in text and "02_never_written.html" not in text
    page = (runs / "01_plot.html").read_text()
    assert re.search(r'<div [^>]*id="labkit-plot-', page) and "Plotly.newPlot(" in page
    # plotly.js is loaded (from the shared file) before require.js, so that Plotly is a global.
    load = page.index('<script src="plotly.min.js"')
    require = page.find("require.min.js")
    assert require == -1 or load < require
    assert (runs / "plotly.min.js").stat().st_size > 1_000_000
    assert "plotly.min.js" not in [p.name for p in runs.iterdir() if p.suffix == ".html"]
    with pytest.raises(ValueError, match="one row per notebook"):
        write_html_report([ok], runs, summary)


def _row(status="ok", **params_and_records):
    params = {k: v for k, v in params_and_records.items() if k != "acc"}
    records = {"acc": params_and_records["acc"]} if "acc" in params_and_records else {}
    return {"notebook": "/x/03_mlp.ipynb", "output": "/x/out.ipynb", "parameters": params,
            "status": status, "seconds": 1.0, "records": records, "error": ""}


def test_sweep_figure_kinds():
    grid = {"lr": [0.001, 0.1], "bs": [32, 128]}
    rows = [_row(lr=0.001, bs=32, acc=0.5), _row(lr=0.001, bs=128, acc=0.6),
            _row(lr=0.1, bs=32, acc=0.7), _row("failed", lr=0.1, bs=128, acc=0.1)]
    heat = sweep_figure(rows, grid, "acc").data[0]
    assert heat.type == "heatmap"
    assert [list(r) for r in heat.z] == [[0.5, 0.6], [0.7, None]]  # a failed run leaves a gap
    assert heat.text[1][1] == "failed"

    line = sweep_figure(rows[:2], {"lr": [0.001], "bs": [32, 128]}, "acc").data[0]
    assert line.type == "scatter" and list(line.x) == [32, 128]
    bars = sweep_figure([_row(opt="sgd", acc=0.5), _row(opt="adam", acc=0.6)],
                        {"opt": ["sgd", "adam"]}, "acc").data[0]
    assert bars.type == "bar"

    grid3 = {"lr": [0.1, 0.2], "bs": [32, 64], "opt": ["sgd", "adam"]}
    rows3 = [_row(lr=lr, bs=bs, opt=opt, acc=lr + bs / 100)
             for lr in grid3["lr"] for bs in grid3["bs"] for opt in grid3["opt"]]
    par = sweep_figure(rows3, grid3, "acc").data[0]
    assert par.type == "parcoords"
    assert [d.label for d in par.dimensions] == ["lr", "bs", "opt", "acc"]
    assert list(par.dimensions[2].ticktext) == ["sgd", "adam"]


# --------------------------------------------------------------------------------------------
# labkit run / sweep with papermill


def test_run_exit_codes_table_and_summary(tmp_path, monkeypatch, capsys):
    """`labkit run`'s own logic, with the notebook execution replaced by canned rows."""
    for name in ["01_a.ipynb", "02_b.ipynb"]:
        write_notebook(tmp_path / name, "pass")
    outcome = {}

    def fake_run_jobs(jobs, workers=1, on_done=None):
        assert workers == 1  # `run` executes notebooks one after another
        rows = [{"notebook": str(j["notebook"]), "output": str(j["output"]),
                 "parameters": j["parameters"], "seconds": 1.25, "records": {"acc": 0.5},
                 "status": outcome.get(Path(j["notebook"]).name, "ok"),
                 "error": "" if Path(j["notebook"]).name not in outcome else "KeyError: 'lr'"}
                for j in jobs]
        return rows, "interrupted" in outcome.values()

    monkeypatch.setattr(cli, "run_jobs", fake_run_jobs)
    out = tmp_path / "runs"
    assert cli.main(["run", str(tmp_path), "--out", str(out), "-p", "x", "0.1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["notebook", "status", "seconds", "result"]
    assert table[2].split() == ["01_a.ipynb", "ok", "1.2", "acc=0.5"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"] == {"x": 0.1} and len(summary["results"]) == 2

    outcome["02_b.ipynb"] = "failed"
    assert cli.main(["run", str(tmp_path), "--out", str(out)]) == 1
    assert "KeyError: 'lr'" in capsys.readouterr().out
    outcome["02_b.ipynb"] = "interrupted"
    assert cli.main(["run", str(tmp_path), "--out", str(out)]) == 130


@needs_kernel
def test_run_folder_with_parameters_quick_a_failure_and_html(tmp_path, kernel_env, capsys):
    course = tmp_path / "course"
    course.mkdir()
    write_notebook(course / "01_tiny.ipynb", TINY, PLOT)
    write_notebook(course / "02_broken.ipynb", "raise RuntimeError('boom: the notebook broke')")
    (course / "scratch.ipynb").write_text("not a notebook")  # not NN_*: not run
    out = tmp_path / "runs"

    code = cli.main(["run", str(course), "-p", "x", "5", "--quick", "--out", str(out), "--html",
                     "--timeout", "120"])
    table = capsys.readouterr().out
    assert code == 1, table  # one notebook failed; the other still ran
    lines = table.splitlines()
    first = next(line for line in lines if line.startswith("01_tiny.ipynb"))
    second = next(line for line in lines if line.startswith("02_broken.ipynb"))
    assert lines.index(first) < lines.index(second)
    assert " ok " in first and "y=10" in first and "quick=True" in first
    assert "failed" in second and "RuntimeError: boom: the notebook broke" in second
    assert "scratch" not in table

    got = recmod.records(out / "01_tiny.ipynb")
    assert got["y"] == 10  # -p x 5 reached the notebook
    assert got["quick"] is True and got["env_quick"] == "1"
    assert os.path.samefile(got["cwd"], course)  # the kernel runs in the notebook's folder
    assert os.environ.get("LABKIT_QUICK") is None  # only the kernels saw it

    summary = json.loads((out / "summary.json").read_text())
    assert [r["status"] for r in summary["results"]] == ["ok", "failed"]
    assert summary["results"][0]["records"]["y"] == 10 and summary["results"][0]["seconds"] > 0
    assert summary["parameters"] == {"x": 5} and summary["quick"] is True

    index = (out / "index.html").read_text()
    assert 'href="01_tiny.html"' in index and 'href="02_broken.html"' in index
    page = (out / "01_tiny.html").read_text()
    assert re.search(r'<div [^>]*id="labkit-plot-', page) and "tiny plot" in page
    assert (out / "plotly.min.js").exists()


@needs_kernel
def test_sweep_grid_with_a_failing_combination(tmp_path, kernel_env, capsys):
    nb = write_notebook(tmp_path / "tiny.ipynb", TINY)
    out = tmp_path / "sweep"
    code = cli.main(["sweep", str(nb), "-p", "x", "1,3", "-p", "scale", "1,10",
                     "--workers", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1, printed  # one combination fails

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["x"], r["scale"]) for r in rows] == [("1", "1"), ("1", "10"), ("3", "1"), ("3", "10")]
    assert list(rows[0])[:3] == ["x", "scale", "y"]
    assert {"status", "seconds", "error"} <= set(rows[0])
    assert [r["y"] for r in rows[:2]] == ["2", "20"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    assert rows[2]["error"] == "ValueError: x must not be 3, got 3"
    assert rows[2]["y"] == ""

    assert recmod.records(out / "tiny__x=1__scale=10.ipynb")["y"] == 20
    assert (out / "tiny__x=3__scale=1.ipynb").exists()  # failed runs are kept, for their traceback
    summary = (out / "summary.html").read_text()
    assert "heatmap" in summary and summary.count("Plotly.newPlot") >= 1
    assert "ValueError: x must not be 3" in summary


@needs_kernel
def test_sweep_ctrl_c_keeps_finished_rows(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) stops a sweep cleanly:
    finished rows are kept, the running notebook stops, the queued one is not run."""
    nb = write_notebook(tmp_path / "sleepy.ipynb", "import time\ntime.sleep(t)", parameters="t = 0")
    out = tmp_path / "sweep"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from labkit.cli import main; sys.exit(main())",
         "sweep", str(nb), "-p", "t", "0,600,5", "--workers", "1", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        for line in proc.stderr:  # the quick run finishes first
            if line.startswith("[1/3]"):
                break
        assert "t=0: ok" in line
        sleeping = out / "sleepy__t=600.ipynb"
        for _ in range(600):  # papermill marks the cell "running" in the saved copy
            time.sleep(0.1)
            if sleeping.exists() and '"status": "running"' in sleeping.read_text():
                break
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "KeyboardInterrupt" not in stderr and "labkit/cli.py" not in stderr, stderr
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["t"], r["status"]) for r in rows] == \
        [("0", "ok"), ("600", "interrupted"), ("5", "cancelled")]
    assert float(rows[1]["seconds"]) < 60
    assert (out / "summary.html").exists()


# --------------------------------------------------------------------------------------------
# labkit doctor


def test_doctor_json(capsys):
    code = cli.main(["doctor", "--json"])
    env = json.loads(capsys.readouterr().out)
    assert {"python", "platform", "torch", "packages", "kernels", "labextensions",
            "problems", "ok"} <= set(env)
    assert set(cli.PACKAGES) <= set(env["packages"])
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["torch"]["device"] in ("cpu", "cuda", "mps")
    assert {"@jupyter-widgets/jupyterlab-manager", "jupyterlab-plotly"} <= set(env["labextensions"])
    assert env["ok"] == (env["problems"] == []) and code == (0 if env["ok"] else 1)


def test_doctor_names_missing_lab_extensions(tmp_path):
    env = cli.collect_environment(labextensions_path=[str(tmp_path)])  # an empty extensions folder
    assert env["labextensions"]["jupyterlab-plotly"] is None
    assert not env["ok"]
    text = "\n".join(env["problems"])
    assert "@jupyter-widgets/jupyterlab-manager is not installed: pip install 'ipywidgets>=8'" in text
    assert "jupyterlab-plotly is not installed: pip install 'plotly>=5'" in text


def test_doctor_text_output(capsys):
    code = cli.main(["doctor"])
    text = capsys.readouterr().out
    assert "plotly" in text and "torch" in text
    assert ("All good." in text) == (code == 0)
    if code:
        assert "To fix:" in text


# --------------------------------------------------------------------------------------------
# Start-up: what `import labkit` and `labkit --help` load


def _modules_after(code):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("LABKIT_FRONTEND", None)
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                           "print(json.dumps(sorted(m for m in sys.modules if '.' not in m)))"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1])), done.stdout


HEAVY = {"torch", "plotly", "ipywidgets", "torchmetrics", "sklearn", "papermill", "IPython"}


def test_import_labkit_loads_nothing_heavy_until_used():
    loaded, _ = _modules_after("import labkit as lk\nassert 'Trainer' in lk.__all__ and 'Trainer' in dir(lk)")
    assert not loaded & HEAVY, loaded & HEAVY
    # the names still work, and each loads only what it needs
    code = ("import sys, json\nimport labkit as lk\nsnap = lambda: sorted(m for m in sys.modules if '.' not in m)\n"
            "lk.Trainer; lk.models.MLP(4, [8], 2); lk.seed_everything(0)\nprint(json.dumps(snap()))\n"
            "lk.data.digits()\nprint(json.dumps(snap()))\n"
            "from labkit import LivePlot, ControlPanel, record, lr_find, frontend\n"
            "import labkit.record, labkit.lr_find, labkit.frontend\n"
            "assert callable(lk.record) and callable(lk.lr_find) and callable(lk.frontend)\n"
            "assert lk.record is record and lk.lr_find is lr_find")
    loaded, out = _modules_after(code)
    trainer, data = (set(json.loads(line)) for line in out.splitlines()[:2])
    assert "torch" in trainer and not trainer & {"plotly", "ipywidgets", "torchmetrics", "sklearn"}
    assert "sklearn" in data and not data & {"plotly", "ipywidgets", "torchmetrics"}
    assert {"plotly", "ipywidgets"} <= loaded


def test_labkit_help_and_run_start_without_torch(tmp_path):
    nb = write_notebook(tmp_path / "01_a.ipynb", "pass")
    code = ("from labkit.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            f"assert main(['run', {str(nb)!r}, '-p', 'nope', '1', '--out', {str(tmp_path / 'out')!r}]) == 2\n")
    loaded, out = _modules_after(code)
    assert "usage: labkit" in out and "torch" not in loaded, sorted(loaded & HEAVY)


def test_plotly_renderer_is_set_when_plotly_is_first_imported():
    env = dict(os.environ, PYTHONPATH=str(REPO), LABKIT_FRONTEND="headless")
    code = ("import sys, labkit\nassert 'plotly' not in sys.modules\n"
            "import plotly.io as pio\nprint(pio.renderers.default)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "plotly_mimetype"


# --------------------------------------------------------------------------------------------
# Kernels over IPC, durable results, long values, a Dask cluster

IPC = """\
import json, os
import ipykernel
import labkit
import plotly.io as pio
info = json.loads(ipykernel.get_connection_info())
labkit.record("transport", info["transport"])
labkit.record("connection_file_private", oct(os.stat(os.path.dirname(ipykernel.get_connection_file())).st_mode & 0o777))
labkit.record("renderer", pio.renderers.default)
"""


@needs_kernel
def test_kernels_run_over_ipc_without_the_tcp_warning(tmp_path):
    nb = write_notebook(tmp_path / "01_ipc.ipynb", IPC)
    out = tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "labkit.cli", "run", str(nb), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "without encryption" not in done.stdout + done.stderr
    assert "TCP" not in done.stderr, done.stderr
    got = recmod.records(out / "01_ipc.ipynb")
    assert got["transport"] == "ipc"
    assert got["connection_file_private"] == "0o700"       # sockets in a folder only this user can enter
    assert got["renderer"] == "plotly_mimetype"
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert [(r["notebook"], r["status"], r["transport"]) for r in rows] == [("01_ipc.ipynb", "ok", "ipc")]


@needs_kernel
def test_sweep_sigterm_keeps_every_finished_row(tmp_path):
    """results.csv holds a row as soon as its notebook finishes; SIGTERM (to the main process only,
    as a scheduler or `kill` sends it) stops the sweep like Ctrl-C and keeps every finished row."""
    nb = write_notebook(tmp_path / "sleepy.ipynb", "import time, labkit\ntime.sleep(t)\nlabkit.record('slept', t)",
                        parameters="t = 0")
    out = tmp_path / "sweep"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit.cli", "sweep", str(nb), "-p", "t", "0,600,5", "--workers", "1",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        for line in proc.stderr:
            if line.startswith("[1/3]"):
                break
        assert "t=0: ok" in line
        # the finished row is on disk already, while the sweep goes on
        rows = list(csv.DictReader(open(out / "results.csv", newline="")))
        assert [(r["t"], r["status"], r["slept"]) for r in rows] == [("0", "ok", "0")]
        sleeping = out / "sleepy__t=600.ipynb"
        for _ in range(600):
            time.sleep(0.1)
            if sleeping.exists() and '"status": "running"' in sleeping.read_text():
                break
        proc.terminate()                                   # SIGTERM to the main process alone
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert [(r["t"], r["status"]) for r in rows] == [("0", "ok"), ("600", "interrupted"), ("5", "cancelled")]
    assert float(rows[1]["seconds"]) < 60                  # the running notebook was stopped
    assert (out / "summary.html").exists()


@needs_kernel
def test_sweep_with_a_300_character_value(tmp_path, kernel_env, capsys):
    nb = write_notebook(tmp_path / "note.ipynb", "import labkit\nlabkit.record('n', len(note))",
                        parameters="note = ''")
    value = "x" * 300
    out = tmp_path / "sweep"
    code = cli.main(["sweep", str(nb), "-p", "note", f"{value},short", "--out", str(out), "--workers", "1"])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert [(r["note"], r["n"], r["status"]) for r in rows] == [(value, "300", "ok"), ("short", "5", "ok")]
    assert all(len(Path(r["output"]).name) <= cli.MAX_NAME + 6 for r in rows)
    assert (out / "summary.html").exists()


@needs_kernel
def test_sweep_on_a_dask_cluster(tmp_path, kernel_env, capsys):
    distributed = pytest.importorskip("distributed")
    nb = write_notebook(tmp_path / "tiny.ipynb", TINY + "labkit.record('worker_pid', os.getppid())\n")
    out = tmp_path / "sweep"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        code = cli.main(["sweep", str(nb), "-p", "x", "1,3", "-p", "scale", "1,10",
                         "--scheduler", cluster.scheduler_address, "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 1, printed.out + printed.err            # x=3 fails, as on the local pool
    assert "on the Dask cluster at tcp://127.0.0.1:" in printed.err
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert [(r["x"], r["scale"], r["status"]) for r in rows] == \
        [("1", "1", "ok"), ("1", "10", "ok"), ("3", "1", "failed"), ("3", "10", "failed")]
    assert [r["y"] for r in rows[:2]] == ["2", "20"]
    assert rows[2]["error"] == "ValueError: x must not be 3, got 3"
    # executed notebooks come back to this machine, where a local sweep saves them
    assert recmod.records(out / "tiny__x=1__scale=10.ipynb")["y"] == 20
    assert Path(rows[0]["output"]) == (out / "tiny__x=1__scale=1.ipynb").resolve()
    assert os.path.samefile(recmod.records(out / "tiny__x=1__scale=1.ipynb")["cwd"], tmp_path)
    assert "heatmap" in (out / "summary.html").read_text()
    assert all(r["worker_pid"] != str(os.getpid()) for r in rows[:2])   # not run by this process


def test_gpu_check_says_clearly_that_there_is_no_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the real check is benchmarks/gpu_check.py")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py")],
                          capture_output=True, text=True, env=env, timeout=300)
    from labkit.doctor import NO_GPU

    assert done.returncode == NO_GPU == 3
    assert "no CUDA GPU found" in done.stdout and "Nothing was checked" in done.stdout
    assert cli.main(["doctor", "--gpu"]) == 0          # for doctor, "no GPU here" is an answer
