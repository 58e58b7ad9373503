"""The ``labkit`` command: run notebooks, sweep their parameters, check the environment.

    labkit run notebooks/ --quick            # every NN_*.ipynb, in order, with papermill
    labkit sweep notebooks/03_mlp.ipynb -p lr 1e-3,1e-2 -p batch_size 32,128
    labkit doctor                            # versions, devices, JupyterLab extensions

Notebooks run in a worker process, each in a fresh kernel whose working directory is the
notebook's folder. Heavy imports (papermill, nbformat, plotly) happen inside the subcommands
so that ``labkit --help`` answers at once.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

NOTEBOOK_NAME = re.compile(r"^\d{2}_.*\.ipynb$")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ---------------------------------------------------------------------------------------------
# Parameters


def parse_value(text: str):
    """Parse a command-line value the way ``papermill -p`` does: bool, None, int, float or str.

    >>> [parse_value(s) for s in ("True", "None", "3", "1e-3", "adam")]
    [True, None, 3, 0.001, 'adam']
    """
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _check_name(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"parameter name {name!r} is not a valid Python identifier; "
                         f"use the variable name from the notebook's parameters cell")
    return name


def parse_parameters(pairs) -> dict:
    """``[["lr", "0.1"], ["epochs", "3"]]`` -> ``{"lr": 0.1, "epochs": 3}``."""
    params = {}
    for name, text in pairs or []:
        params[_check_name(name)] = parse_value(text)
    return params


def parse_grid(pairs) -> dict:
    """``[["lr", "1e-3,1e-2"], ["batch_size", "32"]]`` -> ``{"lr": [0.001, 0.01], "batch_size": [32]}``."""
    grid = {}
    for name, text in pairs or []:
        _check_name(name)
        if name in grid:
            raise ValueError(f"parameter {name!r} is given twice; list all its values in one "
                             f"-p, separated by commas: -p {name} 1,2,3")
        pieces = [p.strip() for p in text.split(",")]
        if not all(pieces):
            raise ValueError(f"parameter {name!r} has an empty value in {text!r}; "
                             f"write the values separated by commas, e.g. -p {name} 1,2,3")
        grid[name] = [parse_value(p) for p in pieces]
    if not grid:
        raise ValueError("sweep needs at least one parameter: -p NAME VALUE1,VALUE2,...")
    return grid


def find_notebooks(paths) -> list[Path]:
    """Expand notebooks and folders (a folder means its ``NN_*.ipynb``, in order) into files."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if NOTEBOOK_NAME.match(p.name) and not p.name.endswith("-checkpoint.ipynb"))
        elif path.is_file() and path.suffix == ".ipynb":
            found.append(path)
        elif path.exists():
            raise ValueError(f"{str(path)!r} is not a notebook; pass .ipynb files or folders of them")
        else:
            raise FileNotFoundError(f"no such notebook or folder: {str(path)!r}")
    return found


# ---------------------------------------------------------------------------------------------
# Executing one notebook


@contextmanager
def _env(name: str, value: str | None):
    """Set an environment variable for the duration (kernels inherit the environment)."""
    if value is None:
        yield
        return
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def error_line(exc: BaseException) -> str:
    """One line saying what went wrong: the exception a notebook raised, or the runner's error."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:  # papermill's PapermillExecutionError: the error raised inside the notebook
        text = f"{ename}: {evalue}" if evalue else ename
    else:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__
    return ANSI_ESCAPE.sub("", text).strip()


def execute(notebook, output, parameters=None, *, quick=False, timeout=None, kernel="python3") -> dict:
    """Execute ``notebook`` with papermill, save it to ``output``, and return a result row.

    The row holds notebook, output, parameters, status ("ok"/"failed"), seconds, records and
    error. A failure is reported in the row, never raised, so one bad notebook can't stop a batch.
    """
    import papermill

    from labkit.record import records

    notebook, output = Path(notebook).resolve(), Path(output).resolve()
    parameters = dict(parameters or {})
    if quick:
        parameters["quick"] = True
    output.parent.mkdir(parents=True, exist_ok=True)
    row = {"notebook": str(notebook), "output": str(output), "parameters": parameters,
           "status": "ok", "seconds": 0.0, "records": {}, "error": ""}
    start = time.perf_counter()
    try:
        with _env("LABKIT_QUICK", "1" if quick else None):
            papermill.execute_notebook(
                str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                cwd=str(notebook.parent), progress_bar=False, log_output=False,
                execution_timeout=timeout)
    except Exception as exc:  # report any failure (notebook error, timeout, dead kernel) in the row
        row["status"], row["error"] = "failed", error_line(exc)
    row["seconds"] = round(time.perf_counter() - start, 2)
    if output.exists():  # papermill saves the notebook even when a cell fails
        try:
            row["records"] = records(output)
        except Exception as exc:
            row["status"] = "failed"
            row["error"] = row["error"] or f"could not read records: {error_line(exc)}"
    return row


CANCELLED = "not run: the batch was interrupted"
_cancel_event = None  # in a worker process: set by the main process on Ctrl-C


def _init_worker(cancel_event):
    # Idle workers ignore Ctrl-C: the main process decides what stops. While a notebook runs,
    # Ctrl-C does reach the worker (see _run_job), so a running notebook stops promptly.
    global _cancel_event
    _cancel_event = cancel_event
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_job(job: dict) -> dict:
    """Worker-process entry point: execute one notebook; Ctrl-C ends it as "interrupted"."""
    # The executor hands a job to a worker before it starts (so future.cancel() can't stop
    # it); the event lets a job that was queued when Ctrl-C came skip its run.
    if _cancel_event is not None and _cancel_event.is_set():
        return _unfinished_row(job, "cancelled", CANCELLED)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    start = time.perf_counter()
    try:
        return execute(**job)
    except KeyboardInterrupt:
        row = _unfinished_row(job, "interrupted")
        row["seconds"] = round(time.perf_counter() - start, 2)
        return row
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _unfinished_row(job: dict, status: str, error: str = "") -> dict:
    params = dict(job.get("parameters") or {})
    if job.get("quick"):
        params["quick"] = True
    return {"notebook": str(Path(job["notebook"]).resolve()),
            "output": str(Path(job["output"]).resolve()), "parameters": params,
            "status": status, "seconds": 0.0, "records": {}, "error": error or status}


def run_jobs(jobs: list[dict], workers: int = 1, on_done=None) -> tuple[list[dict], bool]:
    """Run jobs (keyword arguments of ``execute``) in worker processes.

    Returns the rows in job order and whether Ctrl-C interrupted the batch. On Ctrl-C pending
    jobs are cancelled and the running ones, which the same Ctrl-C stops, are collected.
    ``on_done(row, n_done, n_total)`` is called as each job finishes.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed, wait

    rows: list[dict | None] = [None] * len(jobs)
    interrupted = False

    def collect(future, index):
        try:
            row = future.result()
        except Exception as exc:  # e.g. the worker process died (out of memory)
            row = _unfinished_row(jobs[index], "failed", error_line(exc))
        if interrupted and row["status"] == "failed":
            row["status"] = "interrupted"  # it failed because Ctrl-C shut its kernel down
        rows[index] = row
        if on_done is not None:
            on_done(row, sum(r is not None for r in rows), len(jobs))

    # "spawn" gives clean workers on every platform (no threads inherited from torch).
    context = multiprocessing.get_context("spawn")
    cancel = context.Event()
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs))), mp_context=context,
                             initializer=_init_worker, initargs=(cancel,)) as pool:
        futures = {pool.submit(_run_job, job): i for i, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                collect(future, futures[future])
        except KeyboardInterrupt:
            interrupted = True
            cancel.set()
            for future in futures:
                future.cancel()
            running = [f for f, i in futures.items() if rows[i] is None and not f.cancelled()]
            if running:
                print(f"\ninterrupted: waiting for {len(running)} started notebook(s) to stop...",
                      file=sys.stderr, flush=True)
            for future in wait(running).done:
                if rows[futures[future]] is None:
                    collect(future, futures[future])
    for i, job in enumerate(jobs):
        if rows[i] is None:
            rows[i] = _unfinished_row(job, "cancelled", CANCELLED)
    return rows, interrupted


# ---------------------------------------------------------------------------------------------
# Printing


def _short(value, width: int = 12) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_records(records: dict, width: int = 60) -> str:
    """``{"loss": 0.123456, "acc": 0.9}`` -> ``"loss=0.1235 acc=0.9"``, cut to ``width``."""
    text = " ".join(f"{k}={_short(v)}" for k, v in records.items())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _result_text(row: dict, width: int = 60) -> str:
    if row["status"] == "ok":
        return format_records(row["records"], width)
    return row["error"] if len(row["error"]) <= 100 else row["error"][:97] + "..."


def _progress(label):
    def on_done(row, done, total):
        print(f"[{done}/{total}] {label(row)}: {row['status']} ({row['seconds']:.1f} s)",
              file=sys.stderr, flush=True)
    return on_done


# ---------------------------------------------------------------------------------------------
# labkit run


def cmd_run(args) -> int:
    notebooks = find_notebooks(args.paths)
    if not notebooks:
        raise ValueError(f"no NN_*.ipynb notebooks found in {', '.join(args.paths)}")
    params = parse_parameters(args.param)
    if args.quick and params.get("quick", True) is not True:
        raise ValueError(f"--quick contradicts -p quick {params['quick']}; use one of them")
    names = [nb.name for nb in notebooks]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"two notebooks would be saved under the same name in {args.out}: "
                         f"{', '.join(clashes)}; run them separately with different --out")
    out_dir = Path(args.out)
    jobs = [dict(notebook=nb, output=out_dir / nb.name, parameters=params, quick=args.quick,
                 timeout=args.timeout, kernel=args.kernel) for nb in notebooks]
    rows, interrupted = run_jobs(jobs, workers=1, on_done=_progress(lambda r: Path(r["notebook"]).name))

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"parameters": params, "quick": args.quick, "interrupted": interrupted, "results": rows}
    (out_dir / "summary.json").write_text(json.dumps(_strict(summary), indent=2) + "\n")
    print(format_table(["notebook", "status", "seconds", "result"],
                       [[Path(r["notebook"]).name, r["status"], f"{r['seconds']:.1f}", _result_text(r)]
                        for r in rows]))
    if args.html:
        from labkit.report import write_html_report

        index = write_html_report([r["output"] for r in rows], out_dir, rows)
        print(f"report: {index}")
    if interrupted:
        return 130
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _strict(value):
    """JSON without NaN/Infinity (summary.json must load in any JSON parser): those become strings."""
    from labkit.record import _encode

    return _encode(value)


# ---------------------------------------------------------------------------------------------
# labkit sweep


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "-", str(value))


def _sweep_outputs(stem: str, combos: list[dict], out_dir: Path) -> list[Path]:
    """File names that encode the parameters, e.g. ``03_mlp__lr=0.01__batch_size=32.ipynb``."""
    names = []
    for i, combo in enumerate(combos):
        name = stem + "".join(f"__{k}={_slug(v)}" for k, v in combo.items())
        if name in names:  # two values with the same slug, e.g. "a b" and "a/b"
            name += f"__{i}"
        names.append(name)
    return [out_dir / f"{n}.ipynb" for n in names]


def write_results_csv(path, rows: list[dict], param_names: list[str]) -> list[str]:
    """One row per run: parameters, every recorded value, status, seconds, error, output."""
    record_names = list(dict.fromkeys(k for r in rows for k in r["records"]))
    columns = param_names + [k for k in record_names if k not in param_names] + \
        ["status", "seconds", "error", "output"]

    def cell(value):
        return json.dumps(value) if isinstance(value, (list, dict)) else value

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in rows:
            values = {**r["parameters"], **r["records"], "status": r["status"],
                      "seconds": r["seconds"], "error": r["error"], "output": r["output"]}
            writer.writerow([cell(values.get(c, "")) for c in columns])
    return record_names


def cmd_sweep(args) -> int:
    notebook = Path(args.notebook)
    if not notebook.is_file() or notebook.suffix != ".ipynb":
        raise FileNotFoundError(f"no such notebook: {str(notebook)!r}")
    grid = parse_grid(args.param)
    if args.quick and "quick" in grid:
        raise ValueError("--quick contradicts -p quick ...; use one of them")
    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    names = list(grid)
    combos = [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    out_dir = Path(args.out or Path("runs") / f"{notebook.stem}_sweep")
    outputs = _sweep_outputs(notebook.stem, combos, out_dir)
    jobs = [dict(notebook=notebook, output=out, parameters=combo, quick=args.quick,
                 timeout=args.timeout, kernel=args.kernel) for combo, out in zip(combos, outputs)]

    def label(row):
        return " ".join(f"{k}={row['parameters'].get(k)}" for k in names)

    print(f"sweep: {len(jobs)} runs of {notebook.name} on {min(workers, len(jobs))} worker(s)",
          file=sys.stderr, flush=True)
    rows, interrupted = run_jobs(jobs, workers=workers, on_done=_progress(label))

    out_dir.mkdir(parents=True, exist_ok=True)
    record_names = write_results_csv(out_dir / "results.csv", rows, names)
    print(format_table(names + ["status", "seconds", "result"],
                       [[_short(r["parameters"].get(k)) for k in names]
                        + [r["status"], f"{r['seconds']:.1f}", _result_text(r, 50)] for r in rows]))
    print(f"results: {out_dir / 'results.csv'}")

    from labkit.report import write_sweep_html

    metric = args.metric or (record_names[0] if record_names else None)
    problem = write_sweep_html(out_dir / "summary.html", rows, grid, metric)
    print(f"summary: {out_dir / 'summary.html'}")
    if problem:
        print(f"labkit sweep: {problem}", file=sys.stderr)
    if interrupted:
        return 130
    # A --metric that was asked for but cannot be plotted is an error; no records at all is not.
    failed = any(r["status"] != "ok" for r in rows) or (problem and args.metric)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------
# labkit doctor

PACKAGES = ("torch", "ipywidgets", "plotly", "anywidget", "jupyterlab", "papermill", "nbval",
            "nbconvert", "ipykernel", "torchmetrics")


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _major(version: str | None) -> int:
    match = re.match(r"\d+", version or "")
    return int(match.group()) if match else 0


def lab_extensions(labextensions_path=None) -> dict:
    """Installed prebuilt JupyterLab extensions, found as ``jupyter labextension list`` does.

    Returns ``{name: {"version", "path", "enabled"}}``; the first folder on the path wins.
    """
    from jupyter_core.paths import jupyter_path
    from jupyterlab_server.config import get_federated_extensions, get_page_config

    if labextensions_path is None:
        labextensions_path = jupyter_path("labextensions")
    found = get_federated_extensions(labextensions_path)
    disabled = get_page_config(labextensions_path).get("disabledExtensions", {})
    if isinstance(disabled, list):
        disabled = dict.fromkeys(disabled, True)
    return {name: {"version": data["version"], "path": data["ext_path"],
                   "enabled": not disabled.get(name, False)} for name, data in found.items()}


def collect_environment(labextensions_path=None) -> dict:
    """Everything ``labkit doctor`` reports, plus a list of problems with what to install."""
    import platform

    problems = []
    packages = {name: _version(name) for name in PACKAGES}
    for name, version in packages.items():
        if version is None:
            problems.append(f"{name} is not installed: pip install {name}")

    torch_info = None
    if packages["torch"] is not None:
        try:
            from labkit.device import describe

            torch_info = describe()
        except Exception as exc:  # a broken torch install is exactly what doctor should report
            problems.append(f"torch is installed but fails to load ({error_line(exc)}); reinstall it")

    kernels = {}
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        kernels = KernelSpecManager().find_kernel_specs()
    except Exception as exc:
        problems.append(f"cannot list Jupyter kernels ({error_line(exc)}): pip install ipykernel")
    if "python3" not in kernels:
        problems.append("no 'python3' Jupyter kernel, which labkit run uses: "
                        "pip install ipykernel && python -m ipykernel install --user")

    # What the notebooks need in JupyterLab: widgets, and plotly's renderer (plotly >= 5 ships
    # jupyterlab-plotly; plotly >= 6 draws FigureWidget through anywidget).
    needed = {"@jupyter-widgets/jupyterlab-manager": "pip install 'ipywidgets>=8'",
              "jupyterlab-plotly": "pip install 'plotly>=5'"}
    if _major(packages["plotly"]) >= 6:
        needed["anywidget"] = "pip install anywidget"
    extensions = {}
    try:
        extensions = lab_extensions(labextensions_path)
    except Exception as exc:
        problems.append(f"cannot list JupyterLab extensions ({error_line(exc)}): "
                        f"pip install 'jupyterlab>=4'")
    for name, fix in needed.items():
        ext = extensions.get(name)
        if ext is None:
            problems.append(f"JupyterLab extension {name} is not installed: {fix}")
        elif not ext["enabled"]:
            problems.append(f"JupyterLab extension {name} is disabled: jupyter labextension enable {name}")
    plotly_ext = extensions.get("jupyterlab-plotly")
    if plotly_ext and packages["plotly"] and plotly_ext["version"] != packages["plotly"]:
        problems.append(f"jupyterlab-plotly {plotly_ext['version']} (in {plotly_ext['path']}) does not "
                        f"match plotly {packages['plotly']}; remove the stale copy or "
                        f"pip install --force-reinstall plotly=={packages['plotly']}")

    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "executable": sys.executable, "torch": torch_info, "packages": packages,
            "kernels": kernels, "labextensions": {n: extensions.get(n) for n in needed},
            "problems": problems, "ok": not problems}


def cmd_doctor(args) -> int:
    env = collect_environment()
    if args.json:
        print(json.dumps(env, indent=2))
        return 0 if env["ok"] else 1
    rows = [["python", env["python"], env["executable"]], ["platform", env["platform"], ""]]
    info = env["torch"]
    if info:
        accel = f"CUDA: {'yes' if info['cuda'] else 'no'}, MPS: {'yes' if info['mps'] else 'no'}"
        rows.append(["device", info["device"], accel])
        if "gpu" in info:
            rows.append(["gpu", info["gpu"], f"{info['gpu_memory_gb']} GB x {info['gpu_count']}"])
    rows += [[name, version or "MISSING", ""] for name, version in env["packages"].items()]
    rows += [["kernel " + name, "", path] for name, path in env["kernels"].items()]
    for name, ext in env["labextensions"].items():
        if ext is None:
            rows.append(["labextension " + name, "MISSING", ""])
        else:
            where = ("" if ext["enabled"] else "DISABLED ") + ext["path"]
            rows.append(["labextension " + name, ext["version"], where])
    print(format_table(["item", "version", "where / notes"], rows))
    if env["ok"]:
        print("\nAll good.")
        return 0
    print("\nTo fix:")
    for problem in env["problems"]:
        print(f"  - {problem}")
    return 1


# ---------------------------------------------------------------------------------------------
# Entry point


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="Run, sweep and check labkit notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_common(p):
        p.add_argument("--quick", action="store_true",
                       help="pass quick=True and set LABKIT_QUICK=1: a short run of each notebook")
        p.add_argument("--timeout", type=_positive_int, default=None, metavar="SECONDS",
                       help="fail a cell that runs longer than this (default: no limit)")
        p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")

    run = sub.add_parser("run", help="execute notebooks with papermill and report recorded results")
    run.add_argument("paths", nargs="+", metavar="PATH", help="notebooks, or folders of NN_*.ipynb")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="set a notebook parameter (parsed like papermill -p)")
    run.add_argument("--out", default="runs", help="folder for executed notebooks (default: runs/)")
    run.add_argument("--html", action="store_true", help="also write an HTML report (index.html)")
    add_common(run)
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="run a notebook over a grid of parameters, in parallel")
    sweep.add_argument("notebook", metavar="NOTEBOOK")
    sweep.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUES"),
                       help="a parameter and its comma-separated values, e.g. -p lr 1e-3,1e-2")
    sweep.add_argument("--workers", type=int, default=None,
                       help="parallel notebook runs (default: min(2, CPU count))")
    sweep.add_argument("--out", default=None, help="output folder (default: runs/<notebook>_sweep)")
    sweep.add_argument("--metric", default=None,
                       help="recorded value to plot in summary.html (default: the first recorded)")
    add_common(sweep)
    sweep.set_defaults(func=cmd_sweep)

    doctor = sub.add_parser("doctor", help="check Python, torch, devices and JupyterLab extensions")
    doctor.add_argument("--json", action="store_true", help="print machine-readable JSON")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``labkit`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # kernels and workers inherit this: idle OpenMP threads sleep rather than spin, so parallel
    # runs on a small machine don't steal each other's cores (a user's own setting wins)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"labkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
