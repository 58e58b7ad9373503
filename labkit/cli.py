"""The ``labkit`` command: run notebooks, sweep their parameters, check the environment.

    labkit run notebooks/ --quick            # every NN_*.ipynb, in order, with papermill
    labkit sweep notebooks/03_mlp.ipynb -p lr 1e-3,1e-2 -p batch_size 32,128
    labkit doctor                            # versions, devices, JupyterLab extensions

This module is the commands and their arguments; labkit.runner executes notebooks (worker
processes or a Dask cluster, kernels over IPC, results.csv written as runs finish) and
labkit.doctor checks the environment. Heavy imports (torch, papermill, nbformat, plotly) happen
inside the subcommands so that ``labkit --help`` answers at once.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import sys
from pathlib import Path

from .doctor import PACKAGES, cmd_doctor, collect_environment, lab_extensions  # noqa: F401 (re-exported)
from .runner import (CANCELLED, ResultsLog, check_parameters, error_line, execute,  # noqa: F401
                     read_results_csv, run_jobs)

NOTEBOOK_NAME = re.compile(r"^\d{2}_.*\.ipynb$")
MAX_NAME = 150          # characters of a sweep's output file name (file systems allow 255 bytes)


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
        if _check_name(name) in params:
            raise ValueError(f"parameter {name!r} is given twice (-p {name} {params[name]!r} and "
                             f"-p {name} {text}); give it once")
        params[name] = parse_value(text)
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


def _progress(label, log=None):
    """on_done for run_jobs: save the row (results.csv) at once, then print one progress line."""
    def on_done(row, index, done, total):
        if log is not None:
            log(index, row)
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
    print(f"run: {len(notebooks)} notebook(s){' in quick mode' if args.quick else ''}, saved in {args.out}/",
          file=sys.stderr, flush=True)
    for nb in notebooks:              # a misspelled -p fails here, before anything runs
        check_parameters(nb, list(params))
    out_dir = Path(args.out)
    jobs = [dict(notebook=nb, output=out_dir / nb.name, parameters=params, quick=args.quick,
                 timeout=args.timeout, kernel=args.kernel) for nb in notebooks]
    results = ResultsLog(out_dir / "results.csv", list(params), first_columns=("notebook",))
    done: dict[int, dict] = {}

    def save(index, row):             # results.csv and summary.json hold every finished notebook
        results.add(index, row)
        done[index] = row
        _write_run_summary(out_dir, params, args.quick, True, [done[i] for i in sorted(done)])

    rows, interrupted = run_jobs(jobs, workers=1,
                                 on_done=_progress(lambda r: Path(r["notebook"]).name, save))
    results.finish(rows)
    _write_run_summary(out_dir, params, args.quick, interrupted, rows)
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


def _write_run_summary(out_dir: Path, params: dict, quick: bool, interrupted: bool, rows: list[dict]) -> None:
    from labkit.runner import _write_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"parameters": params, "quick": quick, "interrupted": interrupted, "results": rows}
    _write_atomic(out_dir / "summary.json", json.dumps(_strict(summary), indent=2) + "\n")


def _strict(value):
    """JSON without NaN/Infinity (summary.json must load in any JSON parser): those become strings."""
    from labkit.record import _encode

    return _encode(value)


# ---------------------------------------------------------------------------------------------
# labkit sweep


def _slug(value, width: int = 40) -> str:
    text = re.sub(r"[^A-Za-z0-9._+-]", "-", str(value))
    return text if len(text) <= width else text[: width - 3] + "..."


def _sweep_outputs(stem: str, combos: list[dict], out_dir: Path) -> list[Path]:
    """File names that encode the parameters, e.g. ``03_mlp__lr=0.01__batch_size=32.ipynb``.

    Each is at most MAX_NAME characters: a long value is cut and the name ends with a short hash
    of the full parameters; names are kept unique in one pass (a set), so a grid of any size
    starts at once.
    """
    names, seen = [], set()
    stem = _slug(stem, 60)
    pieces: dict = {}                 # (name, type, value) -> ("__name=slug", was it cut?): once per value
    for i, combo in enumerate(combos):
        parts = []
        for k, v in combo.items():
            key = (k, type(v), v)
            if key not in pieces:
                pieces[key] = (f"__{k}={_slug(v)}", len(str(v)) > 40)
            parts.append(pieces[key])
        name = stem + "".join(p for p, _ in parts)
        if len(name) > MAX_NAME or any(cut for _, cut in parts):
            full = "".join(f"__{k}={v!r}" for k, v in combo.items())
            digest = hashlib.sha1(full.encode("utf-8", "backslashreplace")).hexdigest()[:10]
            name = name[: MAX_NAME - 12] + "__" + digest
        if name in seen:              # two values with the same slug, e.g. "a b" and "a/b"
            base, n = name[: MAX_NAME - 12], i
            name = f"{base}__{n}"
            while name in seen:
                n += len(combos)
                name = f"{base}__{n}"
        seen.add(name)
        names.append(name)
    return [out_dir / f"{n}.ipynb" for n in names]


def write_results_csv(path, rows: list[dict], param_names: list[str]) -> list[str]:
    """One row per run: parameters, every recorded value, status, seconds, error, output."""
    log = ResultsLog(path, param_names)
    log.finish(rows)
    return log.record_names


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
    if args.scheduler is not None and not re.match(r"^[a-z]+://\S+$", args.scheduler):
        raise ValueError(f"--scheduler must be a Dask scheduler address such as tcp://HOST:8786, "
                         f"got {args.scheduler!r}")
    names = list(grid)
    n_runs = 1
    for values in grid.values():
        n_runs *= len(values)
    where = f"the Dask cluster at {args.scheduler}" if args.scheduler else f"{min(workers, n_runs)} worker(s)"
    print(f"sweep: {n_runs} runs of {notebook.name} on {where}", file=sys.stderr, flush=True)
    check_parameters(notebook, names)       # a misspelled -p fails here, before anything runs
    combos = [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    out_dir = Path(args.out or Path("runs") / f"{notebook.stem}_sweep")
    outputs = _sweep_outputs(notebook.stem, combos, out_dir)
    jobs = [dict(notebook=notebook, output=out, parameters=combo, quick=args.quick,
                 timeout=args.timeout, kernel=args.kernel) for combo, out in zip(combos, outputs)]

    def label(row):
        return " ".join(f"{k}={_short(row['parameters'].get(k), 40)}" for k in names)

    results = ResultsLog(out_dir / "results.csv", names)
    rows, interrupted = run_jobs(jobs, workers=workers, on_done=_progress(label, results.add),
                                 scheduler=args.scheduler)
    results.finish(rows)
    # the summaries are built from results.csv alone, so they can always be rebuilt from it
    rows = read_results_csv(out_dir / "results.csv", names)
    record_names = results.record_names
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
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on a Dask cluster, e.g. tcp://HOST:8786 (default: local processes)")
    sweep.add_argument("--metric", default=None,
                       help="recorded value to plot in summary.html (default: the first recorded)")
    add_common(sweep)
    sweep.set_defaults(func=cmd_sweep)

    doctor = sub.add_parser("doctor", help="check Python, torch, devices and JupyterLab extensions")
    doctor.add_argument("--json", action="store_true", help="print machine-readable JSON")
    doctor.add_argument("--gpu", action="store_true",
                        help="on a CUDA machine: run benchmarks/gpu_check.py (notebooks on the GPU, AMP, "
                             "torch.compile, the GPT benchmark, DDP) and print one table")
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
    except (ValueError, OSError) as exc:     # bad input, a missing notebook, an --out we cannot write
        print(f"labkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
