"""The notebook runner behind ``labkit run`` and ``labkit sweep``.

    execute(notebook, output, parameters)   one notebook, in a fresh kernel, over IPC -> a result row
    run_jobs(jobs, workers, on_done)        many, in local worker processes or on a Dask cluster
    ResultsLog(path, ...)                   results.csv, one row more as each notebook finishes

Kernels talk to the runner over Unix sockets in a private folder (jupyter_client's "ipc"
transport), so no TCP port is opened. Everything heavy (papermill, jupyter_client, distributed)
is imported inside the functions: ``labkit --help`` never pays for it.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CANCELLED = "not run: the batch was interrupted"


# ---------------------------------------------------------------------------------------------
# Parameters a notebook declares


def notebook_parameters(notebook) -> dict:
    """``{name: default source}`` of the notebook's ``parameters``-tagged cell (papermill's reading)."""
    import papermill

    try:
        found = papermill.inspect_notebook(str(notebook))
    except Exception as exc:      # not JSON, not a notebook, an unreadable file
        raise ValueError(f"cannot read the parameters of {Path(notebook).name} ({error_line(exc)}); "
                         f"is it a notebook saved by Jupyter?") from None
    return {name: spec["default"] for name, spec in found.items()}


def check_parameters(notebook, names) -> None:
    """Refuse, before anything runs, a parameter the notebook does not declare (e.g. ``-p lrr 0.5``)."""
    names = [n for n in names if n]
    if not names:
        return
    declared = notebook_parameters(notebook)
    unknown = [n for n in names if n not in declared]
    if not unknown:
        return
    import difflib

    name = Path(notebook).name
    if not declared:
        raise ValueError(f"{name} has no cell tagged 'parameters', so -p {unknown[0]} would set nothing; "
                         f"tag the cell that holds its settings 'parameters'")
    close = difflib.get_close_matches(unknown[0], list(declared), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    which = "parameter " + ", ".join(repr(u) for u in unknown)
    raise ValueError(f"{name} has no {which}{hint}; its parameters are: {', '.join(declared)}")


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


def _socket_folder() -> str:
    """A private (0700) folder for a kernel's sockets; Unix socket paths are limited to ~100 bytes."""
    base = tempfile.gettempdir()
    if len(base) > 60 and os.path.isdir("/tmp"):
        base = "/tmp"
    return tempfile.mkdtemp(prefix="labkit-kernel-", dir=base)


def ipc_kernel_manager(folder: str, stderr=None):
    """An AsyncKernelManager class whose kernels use Unix sockets (and connection file) in ``folder``.

    ``stderr``: a file for the kernel process's own log (its start-up notes, "KeyboardInterrupt
    caught in kernel" when a run is stopped), which would otherwise land in the terminal; what a
    notebook prints goes into the notebook either way.
    """
    from jupyter_client import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("connection_file", os.path.join(folder, "kernel.json"))
            super().__init__(**kwargs)

        async def start_kernel(self, **kwargs):
            if stderr is not None:
                kwargs.setdefault("stderr", stderr)
            return await super().start_kernel(**kwargs)

    return IPCKernelManager


def kernel_options(folder: str, log=None) -> dict:
    """papermill's options for a kernel on Unix sockets in ``folder`` (its own log to ``log``)."""
    # ZeroMQ has no ipc transport on Windows: there the kernel keeps jupyter_client's default (TCP)
    return {} if os.name == "nt" else {"kernel_manager_class": ipc_kernel_manager(folder, log)}


def _log_tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def execute(notebook, output, parameters=None, *, quick=False, timeout=None, kernel="python3") -> dict:
    """Execute ``notebook`` with papermill, save it to ``output``, and return a result row.

    The row holds notebook, output, parameters, status ("ok"/"failed"), seconds, records and
    error. A failure is reported in the row, never raised, so one bad notebook can't stop a batch.
    The kernel runs in the notebook's folder and listens on Unix sockets only (no TCP port).
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
    sockets = _socket_folder()
    log_path = os.path.join(sockets, "kernel.log")
    try:
        with _env("LABKIT_QUICK", "1" if quick else None), open(log_path, "w") as log:
            papermill.execute_notebook(
                str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                cwd=str(notebook.parent), progress_bar=False, log_output=False,
                execution_timeout=timeout, **kernel_options(sockets, log))
    except Exception as exc:  # report any failure (notebook error, timeout, dead kernel) in the row
        row["status"], row["error"] = "failed", error_line(exc)
        if not getattr(exc, "ename", None):        # the kernel itself failed: say what it logged
            tail = _log_tail(log_path)
            row["error"] += f" (kernel log: {tail})" if tail else ""
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    row["seconds"] = round(time.perf_counter() - start, 2)
    if output.exists():  # papermill saves the notebook even when a cell fails
        try:
            row["records"] = records(output)
        except Exception as exc:
            row["status"] = "failed"
            row["error"] = row["error"] or f"could not read records: {error_line(exc)}"
    return row


# ---------------------------------------------------------------------------------------------
# Local worker processes

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


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so the batch stops the way Ctrl-C stops it."""


@contextmanager
def _sigterm_interrupts():
    if sys.platform == "win32" or not _in_main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run_jobs(jobs: list[dict], workers: int = 1, on_done=None, scheduler: str | None = None,
             connect_timeout: float = 20.0) -> tuple[list[dict], bool]:
    """Run jobs (keyword arguments of ``execute``) in local worker processes, or on the Dask
    cluster whose scheduler is at ``scheduler`` (e.g. ``"tcp://10.0.0.5:8786"``).

    Returns the rows in job order and whether the batch was interrupted (Ctrl-C or SIGTERM).
    On an interrupt pending jobs are cancelled and the running ones are stopped and collected;
    a second interrupt stops waiting for them. ``on_done(row, index, n_done, n_total)`` is
    called as each job finishes, so the caller can save the row at once.
    """
    if scheduler:
        return _run_dask(jobs, scheduler, on_done, connect_timeout)
    return _run_local(jobs, workers, on_done)


def _run_local(jobs, workers, on_done):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed, wait

    rows: list[dict | None] = [None] * len(jobs)
    interrupted = killed = False

    def collect(future, index):
        try:
            row = future.result()
        except Exception as exc:  # e.g. the worker process died (out of memory)
            row = _unfinished_row(jobs[index], "failed", error_line(exc))
        if interrupted and row["status"] == "failed":
            row["status"] = "interrupted"  # it failed because the interrupt shut its kernel down
        rows[index] = row
        if on_done is not None:
            on_done(row, index, sum(r is not None for r in rows), len(jobs))

    # "spawn" gives clean workers on every platform (no threads inherited from torch).
    context = multiprocessing.get_context("spawn")
    cancel = context.Event()
    pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs))), mp_context=context,
                               initializer=_init_worker, initargs=(cancel,))
    with _sigterm_interrupts():
        futures = {pool.submit(_run_job, job): i for i, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                collect(future, futures[future])
        except KeyboardInterrupt as first:
            interrupted = True
            cancel.set()
            for future in futures:
                future.cancel()
            processes = list(getattr(pool, "_processes", {}).values())
            if isinstance(first, _Terminated):   # Ctrl-C reaches the workers itself; SIGTERM does not
                for process in processes:
                    _signal(process, signal.SIGINT)
            running = [f for f, i in futures.items() if rows[i] is None and not f.cancelled()]
            if running:
                print(f"\ninterrupted: waiting for {len(running)} started notebook(s) to stop "
                      f"(interrupt again to stop waiting)...", file=sys.stderr, flush=True)
            try:
                for future in wait(running).done:
                    if rows[futures[future]] is None:
                        collect(future, futures[future])
            except KeyboardInterrupt:        # a second interrupt: stop the workers, keep what finished
                for future in running:
                    if future.done() and rows[futures[future]] is None:
                        collect(future, futures[future])
                killed = True
                for process in processes:
                    _signal(process, signal.SIGKILL)
                for i in range(len(jobs)):
                    if rows[i] is None and any(futures[f] == i for f in running):
                        rows[i] = _unfinished_row(jobs[i], "interrupted")
        finally:
            pool.shutdown(wait=not killed, cancel_futures=True)
    for i, job in enumerate(jobs):
        if rows[i] is None:
            rows[i] = _unfinished_row(job, "cancelled", CANCELLED)
    return rows, interrupted


def _signal(process, signum) -> None:
    try:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signum)
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------------------------
# A Dask cluster


def run_remote(job: dict, source: str) -> tuple[dict, str | None]:
    """Dask task: execute one notebook on a worker and return (row, executed notebook text).

    The notebook runs in place when the worker sees the same file (same machine or a shared file
    system), else from the copy ``source`` in a temporary folder; either way the executed notebook
    comes back to the machine that started the sweep, which saves it where a local run would.
    """
    notebook = Path(job["notebook"])
    with tempfile.TemporaryDirectory(prefix="labkit-sweep-") as tmp:
        try:
            same = notebook.is_file() and notebook.read_text(encoding="utf-8") == source
        except OSError:
            same = False
        if not same:
            notebook = Path(tmp) / notebook.name
            notebook.write_text(source, encoding="utf-8")
        output = Path(tmp) / "out" / Path(job["output"]).name
        row = execute(**{**job, "notebook": notebook, "output": output})
        text = output.read_text(encoding="utf-8") if output.exists() else None
    return row, text


def _run_dask(jobs, scheduler, on_done, connect_timeout=20.0):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ValueError("--scheduler needs Dask distributed on this machine and on the workers: "
                         "pip install 'labkit[cluster]' (or pip install 'dask[distributed]')") from None
    try:
        client = Client(scheduler, timeout=f"{connect_timeout}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r} ({error_line(exc)}); start one "
                         f"with `dask scheduler` and pass its address, e.g. tcp://HOST:8786") from None
    rows: list[dict | None] = [None] * len(jobs)
    interrupted = False
    sources = {}
    try:
        futures = {}
        for i, job in enumerate(jobs):
            path = str(Path(job["notebook"]).resolve())
            if path not in sources:
                sources[path] = Path(path).read_text(encoding="utf-8")
            job = {**job, "notebook": path, "output": str(Path(job["output"]).resolve())}
            futures[client.submit(run_remote, job, sources[path], pure=False, retries=0)] = i
        with _sigterm_interrupts():
            try:
                for future in as_completed(list(futures), loop=client.loop):
                    i = futures[future]
                    try:
                        row, text = future.result()
                    except Exception as exc:    # the worker died, or labkit is missing there
                        row, text = _unfinished_row(jobs[i], "failed", error_line(exc)), None
                    output = Path(jobs[i]["output"]).resolve()
                    if text is not None:
                        output.parent.mkdir(parents=True, exist_ok=True)
                        _write_atomic(output, text)
                    row["notebook"] = str(Path(jobs[i]["notebook"]).resolve())
                    row["output"] = str(output)
                    rows[i] = row
                    if on_done is not None:
                        on_done(row, i, sum(r is not None for r in rows), len(jobs))
            except KeyboardInterrupt:
                interrupted = True
                running = [f for f, i in futures.items() if rows[i] is None and f.status == "processing"]
                client.cancel(list(futures))
                for f in running:          # a task already running on a worker finishes there unseen
                    rows[futures[f]] = _unfinished_row(jobs[futures[f]], "interrupted")
    finally:
        client.close()
    for i, job in enumerate(jobs):
        if rows[i] is None:
            rows[i] = _unfinished_row(job, "cancelled", CANCELLED)
    return rows, interrupted


# ---------------------------------------------------------------------------------------------
# results.csv, durable


def _write_atomic(path: Path, text: str) -> None:
    """Write a whole file so that a reader (or a crash) sees the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _quiet():
            os.unlink(tmp)
        raise


@contextmanager
def _quiet():
    try:
        yield
    except OSError:
        pass


def _cell(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value


class ResultsLog:
    """``results.csv`` kept on disk as runs finish: one row per run -- parameters, every recorded
    value, status, seconds, error, output.

    ``add`` appends the finished row (flushed and fsynced) while its records fit the header;
    a row bringing a new recorded name rewrites the file atomically with the wider header.
    ``finish`` writes every row, in grid order, atomically. So Ctrl-C, SIGTERM or a crash
    leaves a results.csv holding every run that finished.
    """

    def __init__(self, path, param_names: list[str], first_columns: tuple = ()):
        self.path = Path(path)
        self.param_names = list(param_names)
        self.first_columns = list(first_columns)
        self.rows: dict[int, dict] = {}
        self.record_names: list[str] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rewrite()                     # a header now: the file exists from the first second

    @property
    def columns(self) -> list[str]:
        fixed = self.first_columns + self.param_names
        return fixed + [k for k in self.record_names if k not in fixed] + ["status", "seconds", "error", "output"]

    def _line(self, row: dict) -> list:
        values = {**row["parameters"], **row["records"], "status": row["status"], "seconds": row["seconds"],
                  "error": row["error"], "output": row["output"]}
        if "notebook" in self.first_columns:
            values["notebook"] = Path(row["notebook"]).name
        return [_cell(values.get(c, "")) for c in self.columns]

    def _text(self, rows) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.columns)
        writer.writerows(self._line(r) for r in rows)
        return buffer.getvalue()

    def _rewrite(self) -> None:
        _write_atomic(self.path, self._text(self.rows[i] for i in sorted(self.rows)))

    def add(self, index: int, row: dict) -> None:
        self.rows[index] = row
        new = [k for k in row["records"] if k not in self.record_names]
        if new:
            self.record_names += new
            self._rewrite()
            return
        buffer = io.StringIO()
        csv.writer(buffer).writerow(self._line(row))
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def finish(self, rows: list[dict]) -> None:
        self.rows = dict(enumerate(rows))
        for row in rows:
            self.record_names += [k for k in row["records"] if k not in self.record_names]
        self._rewrite()


def read_results_csv(path, param_names: list[str]) -> list[dict]:
    """The rows of a results.csv, with parameters and records parsed back (for the summaries)."""
    fixed = {"notebook", "status", "seconds", "error", "output"}
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for line in csv.DictReader(f):
            params = {k: _parse_cell(line[k]) for k in param_names if k in line}
            records = {k: _parse_cell(v) for k, v in line.items()
                       if k not in fixed and k not in param_names and v != ""}
            try:
                seconds = float(line.get("seconds") or 0)
            except ValueError:
                seconds = 0.0
            rows.append({"notebook": line.get("notebook", ""), "output": line.get("output", ""),
                         "parameters": params, "status": line.get("status", ""), "seconds": seconds,
                         "records": records, "error": line.get("error", "")})
    return rows


def _parse_cell(text: str):
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    from labkit.cli import parse_value

    value = parse_value(text)
    return float(text) if text in ("nan", "inf", "-inf") else value
