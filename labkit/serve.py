"""Serve a model over HTTP with FastAPI and uvicorn: input checks, dynamic batching, a load test.

    with serve_file("cnn.onnx", input_shape=(1, 8, 8)) as url:   # a server process on 127.0.0.1
        httpx.post(f"{url}/predict", json={"inputs": images.tolist()}).json()
        stats = load_test(url, {"inputs": images[:1].tolist()}, clients=8, requests=50)

    python -m labkit.serve cnn.onnx --input-shape 1 8 8 --port 8000     # the same from a shell

    app = make_app(predict, input_shape=(1, 8, 8), max_batch=256, batching=True)
    with serve(app) as url: ...                # any predict function, served from a thread of this process

`predict` is any function from a float32 array [batch, *input_shape] to an array of scores
[batch, classes]: an ONNX Runtime session, a `torch.export` program, a model. The server answers

    POST /predict  {"inputs": [example, ...]}  ->  {"predictions": [...], "probabilities": [[...], ...]}
    GET  /health                                ->  {"status": "ok", "model_calls": ..., "examples": ...}

and refuses bad input with a 4xx status whose `detail` says what is wrong and what to send:
422 for a missing field, a wrong type, a wrong shape or a non-finite number; 413 for a batch larger
than `max_batch`.

**Dynamic batching.** A model call has a fixed cost (Python, dispatch, thread wake-up) that a tiny
model's arithmetic cannot hide. With `batching=True`, requests that arrive while the model is busy
(or within `max_wait_ms` of each other) wait in a queue and go through the model together, as one
batch; each request still gets its own rows back.

Needs the `serve` extra: `pip install "labkit[serve]"` (FastAPI, uvicorn, httpx).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .checks import check_int, check_nonnegative, check_positive

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_host(host: str) -> str:
    if host not in LOOPBACK:
        raise ValueError(f"host must be a loopback address {LOOPBACK} (a lab server is not for the network), "
                         f"got {host!r}")
    return host


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(f"labkit.serve needs {module}: pip install 'labkit[serve]'") from e


class BadInput(ValueError):
    """A request the server refuses: `status` is the HTTP status, the message its `detail`."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def parse_inputs(inputs, input_shape: tuple[int, ...], max_batch: int) -> np.ndarray:
    """A request's `inputs` as a float32 array [batch, *input_shape], or BadInput saying what is wrong.

    Each example may be given in `input_shape` (e.g. 8 rows of 8 for a (1, 8, 8) image: the leading
    1-sized dimensions may be left out) or flattened (64 numbers)."""
    size = math.prod(input_shape)
    example = f"{size} numbers" + (f" (or nested as {list(input_shape)})" if len(input_shape) > 1 else "")
    if not isinstance(inputs, list) or not inputs:
        raise BadInput(f"'inputs' must be a non-empty list of examples, each {example}; "
                       f"got {type(inputs).__name__}" + (" (empty)" if inputs == [] else ""))
    if len(inputs) > max_batch:
        raise BadInput(f"a batch of {len(inputs)} examples is larger than this server's max_batch={max_batch}; "
                       "split it into several requests", status=413)
    # flat, the full shape, or the shape without its leading 1s ((1, 8, 8) -> 8 rows of 8)
    allowed = {(size,)} | {input_shape[k:] for k in range(len(input_shape))
                           if all(d == 1 for d in input_shape[:k])}
    rows = []
    for i, item in enumerate(inputs):
        try:
            row = np.asarray(item, dtype=np.float32)
        except (TypeError, ValueError):
            raise BadInput(f"inputs[{i}] is not an array of numbers: each example must be {example} "
                           f"(got {_preview(item)})") from None
        if row.shape not in allowed:
            raise BadInput(f"inputs[{i}] has shape {list(row.shape)}; each example must be {example}")
        if not np.isfinite(row).all():
            raise BadInput(f"inputs[{i}] holds NaN or infinity; send finite numbers")
        rows.append(row.reshape(input_shape))
    return np.stack(rows)


def _preview(item, width: int = 40) -> str:
    text = repr(item)
    return text if len(text) <= width else text[:width - 3] + "..."


class DynamicBatcher:
    """Collects concurrent requests into one model call: the first request waits at most `max_wait_ms`
    for others, and a batch holds at most `max_batch` examples (one big request may exceed it alone)."""

    def __init__(self, predict: Callable, max_batch: int = 256, max_wait_ms: float = 2.0):
        self.predict, self.max_batch, self.max_wait = predict, max_batch, max_wait_ms / 1e3
        self.queue: asyncio.Queue | None = None
        self.calls = self.examples = 0

    async def __call__(self, x: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((x, future))
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            count, deadline = len(items[0][0]), loop.time() + self.max_wait
            while count < self.max_batch:
                try:                                   # take what is already waiting, then wait a little
                    item = self.queue.get_nowait() if not self.queue.empty() else \
                        await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
                items.append(item)
                count += len(item[0])
            batch = np.concatenate([x for x, _ in items])
            try:
                scores = await loop.run_in_executor(None, self.predict, batch)
                self.calls, self.examples = self.calls + 1, self.examples + len(batch)
            except Exception as error:                 # every waiting request learns of it
                for _, future in items:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for x, future in items:
                if not future.done():
                    future.set_result(scores[start:start + len(x)])
                start += len(x)


def make_app(predict: Callable, input_shape, max_batch: int = 256, batching: bool = True,
             max_wait_ms: float = 2.0, title: str = "labkit model server"):
    """A FastAPI app serving `predict` at POST /predict (see the module's docstring)."""
    fastapi = _require("fastapi")
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    if not callable(predict):
        raise TypeError(f"predict must be a callable from an array to scores, got {type(predict).__name__}")
    input_shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else (input_shape,)
    for d in input_shape:
        check_int("input_shape dimension", d, minimum=1)
    max_batch = check_int("max_batch", max_batch, minimum=1)
    max_wait_ms = check_nonnegative("max_wait_ms", max_wait_ms)
    batcher = DynamicBatcher(predict, max_batch, max_wait_ms) if batching else None
    counts = {"calls": 0, "examples": 0}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = None
        if batcher is not None:
            batcher.queue = asyncio.Queue()
            task = asyncio.create_task(batcher.run())
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = fastapi.FastAPI(title=title, lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def readable_validation_error(request, exc):
        return JSONResponse(status_code=422, content={
            "detail": "send a JSON object {\"inputs\": [example, ...]} with each example "
                      f"{math.prod(input_shape)} numbers ({'; '.join(_describe(e) for e in exc.errors())})"})

    @app.exception_handler(BadInput)
    async def bad_input(request, exc: BadInput):
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)})

    @app.get("/health")
    async def health():
        calls = batcher.calls if batcher else counts["calls"]
        examples = batcher.examples if batcher else counts["examples"]
        return {"status": "ok", "batching": batcher is not None, "max_batch": max_batch,
                "model_calls": calls, "examples": examples}

    @app.post("/predict")
    async def predict_endpoint(body: dict = fastapi.Body(...)):
        if "inputs" not in body:
            raise BadInput("the request has no 'inputs' field: send {\"inputs\": [example, ...]} "
                           f"with each example {math.prod(input_shape)} numbers")
        x = parse_inputs(body["inputs"], input_shape, max_batch)
        if batcher is not None:
            scores = await batcher(x)
        else:
            scores = await run_in_threadpool(predict, x)
            counts["calls"] += 1
            counts["examples"] += len(x)
        scores = np.asarray(scores, dtype=np.float64)
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return {"predictions": scores.argmax(axis=1).tolist(), "probabilities": probs.round(6).tolist()}

    return app


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    return f"{where}: {error.get('msg', 'invalid')}"


@contextlib.contextmanager
def serve(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0):
    """Run `app` with uvicorn in a background thread; yields its URL; always stops it on exit.

    port=0 picks a free port. Only loopback addresses are accepted: this is for notebooks and tests."""
    uvicorn = _require("uvicorn")
    _check_host(host)
    port = check_int("port", port, minimum=0, maximum=65535)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="labkit-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            raise RuntimeError(f"the server did not start on {host}:{port} within {timeout:g} s "
                               "(is the port in use?)")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the server on port {bound} did not stop within {timeout:g} s")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (a stopped server has really let go of its port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) != 0


def load_test(url: str, payload: dict, clients: int = 8, requests: int = 25, timeout: float = 60.0) -> dict:
    """`clients` threads each POST `payload` to {url}/predict `requests` times, one after another.

    Bounded in count (clients x requests) and in time (`timeout` seconds in all: clients stop early
    past it). Returns latency percentiles in ms, requests/s and examples/s, and the error count."""
    httpx = _require("httpx")
    clients = check_int("clients", clients, minimum=1, maximum=256)
    requests = check_int("requests", requests, minimum=1, maximum=10_000)
    timeout = check_positive("timeout", timeout, hint="seconds for the whole load test")
    per_request = len(payload.get("inputs", [])) if isinstance(payload, dict) else 0
    latencies, errors, lock = [], [], threading.Lock()
    start = time.perf_counter()
    deadline = start + timeout
    barrier = threading.Barrier(clients)

    def client():
        with httpx.Client(base_url=url, timeout=max(1.0, timeout)) as http:
            barrier.wait()
            for _ in range(requests):
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    response = http.post("/predict", json=payload)
                    ok = response.status_code == 200
                except httpx.HTTPError as e:
                    ok, response = False, e
                with lock:
                    (latencies if ok else errors).append(time.perf_counter() - t0 if ok else str(response))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    seconds = time.perf_counter() - start
    ms = sorted(1e3 * s for s in latencies)

    def pct(p):
        return ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))] if ms else math.nan

    return {"clients": clients, "requests": len(ms), "errors": len(errors), "seconds": seconds,
            "requests_per_s": len(ms) / seconds, "examples_per_s": len(ms) * per_request / seconds,
            "p50_ms": pct(50), "p95_ms": pct(95), "max_ms": ms[-1] if ms else math.nan,
            "mean_ms": statistics.fmean(ms) if ms else math.nan}


def onnx_predictor(path) -> Callable:
    """A predict function running the ONNX file at `path` in ONNX Runtime (its first input is the batch)."""
    ort = _require("onnxruntime")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX model at {str(path)!r}")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]
    return predict


@contextlib.contextmanager
def serve_file(model_path, input_shape, batching: bool = True, max_batch: int = 256, max_wait_ms: float = 2.0,
               host: str = "127.0.0.1", timeout: float = 60.0):
    """Serve an exported ONNX model from a separate server process (`python -m labkit.serve`), as a real
    deployment would: its own interpreter, so clients in this process do not share its GIL. Yields the
    URL; on exit the process is stopped (SIGTERM, then SIGKILL) and its port checked free."""
    _check_host(host)
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"no ONNX model at {str(model_path)!r}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else (input_shape,)
    command = [sys.executable, "-m", "labkit.serve", str(model_path), "--host", host, "--port", "0",
               "--input-shape", *map(str, shape), "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)]
    if not batching:
        command.append("--no-batching")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url, lines = None, []
    try:
        reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        while url is None:
            url = next((ln.split()[-1] for ln in list(lines) if ln.startswith("labkit.serve listening on")), None)
            if url is None and (process.poll() is not None or time.monotonic() > deadline):
                error = process.stderr.read() if process.poll() is not None else ""
                raise RuntimeError(f"the model server did not start within {timeout:g} s:\n{error[-2000:]}")
            time.sleep(0.02)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for stream in (process.stdout, process.stderr):
            stream.close()
    port = int(url.rsplit(":", 1)[1])
    if not port_is_free(port, host):
        raise RuntimeError(f"the model server stopped but port {port} is still taken")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.serve",
                                     description="Serve an ONNX model at POST /predict on this machine.")
    parser.add_argument("model", help="an .onnx file (its first input is the batch)")
    parser.add_argument("--input-shape", type=int, nargs="+", required=True,
                        help="the shape of one example, e.g. 1 8 8")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--no-batching", action="store_true", help="one model call per request")
    args = parser.parse_args(argv)
    uvicorn = _require("uvicorn")
    try:
        _check_host(args.host)
    except ValueError as e:
        parser.error(f"--{e}")
    app = make_app(onnx_predictor(args.model), tuple(args.input_shape), max_batch=args.max_batch,
                   batching=not args.no_batching, max_wait_ms=args.max_wait_ms)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))

    async def run():
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            port = server.servers[0].sockets[0].getsockname()[1]
            print(f"labkit.serve listening on http://{args.host}:{port}", flush=True)
        await task
    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
