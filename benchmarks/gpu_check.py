"""The GPU path, checked for real: everything labkit does on CUDA, in one command and one table.

    python benchmarks/gpu_check.py                 # or: labkit doctor --gpu
    python benchmarks/gpu_check.py --skip-notebooks --gpt-steps 300

On a CUDA machine it runs, and reports one row each:
  - every notebook in quick mode on the GPU (labkit run notebooks --quick -p device cuda);
  - AMP fp16 with the GradScaler (the digits CNN, against the same run in fp32);
  - torch.compile (the digits MLP, against the same run in eager mode);
  - the GPT benchmark of benchmarks/gpt.py on the GPU (tokens/s, validation loss);
  - DDP over NCCL with torchrun, when more than one GPU is present (else the row says why not).

Exit codes: 0 every check passed; 1 a check failed (the table says which); 3 (NO_GPU) no CUDA GPU
was found, with a message saying so -- nothing was checked. `labkit doctor --gpu` runs this script
and answers 0 in that last case: for doctor, "no GPU here" is an answer, not a fault.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_GPU = 3
DEVICE = "cuda"     # the checks' device; only a smoke test of this script's own code sets "cpu"


def no_gpu_message() -> str | None:
    """None on a CUDA machine, else one line saying why there is nothing to check."""
    try:
        import torch
    except ImportError as exc:
        return f"no CUDA GPU found: torch does not import ({exc})"
    if not torch.cuda.is_available():
        built = torch.version.cuda or "none (a CPU-only build)"
        return (f"no CUDA GPU found (torch {torch.__version__}, CUDA build: {built}); "
                f"the GPU check needs a machine with an NVIDIA GPU and a CUDA build of PyTorch")
    return None


# -- the checks: each returns a row {"check", "status", "result", "seconds"} --------------------------
def _row(check, ok, result, seconds):
    return {"check": check, "status": "ok" if ok else "FAILED", "result": result, "seconds": round(seconds, 1)}


def check_notebooks(out: Path, timeout: int) -> list[dict]:
    """Every notebook in quick mode with device="cuda", through labkit run (one row each)."""
    from labkit import cli

    t0 = time.perf_counter()
    code = cli.main(["run", str(ROOT / "notebooks"), "--quick", "-p", "device", "cuda",
                     "--out", str(out), "--timeout", str(timeout)])
    summary = json.loads((out / "summary.json").read_text())
    rows = [_row(f"notebook {Path(r['notebook']).name}", r["status"] == "ok",
                 r["error"] or cli.format_records(r["records"], 50), r["seconds"]) for r in summary["results"]]
    if not rows:
        rows = [_row("notebooks", False, f"labkit run exited {code} with no result", time.perf_counter() - t0)]
    return rows


def _digits_fit(model, flat=True, amp=False, epochs=8, compile_model=False):
    import torch

    import labkit as lk

    lk.seed_everything(0)
    data = lk.data.digits(batch_size=64, flat=flat)
    if compile_model:
        model = torch.compile(model)
    trainer = lk.Trainer(model, loss="cross_entropy", optimizer="adam", lr=1e-3, metrics=["accuracy"],
                         device=DEVICE, amp=amp)
    t0 = time.perf_counter()
    history = trainer.fit(data, epochs=epochs)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return trainer, trainer.evaluate(data.test), history, seconds


def check_amp() -> dict:
    """AMP fp16 + GradScaler on the digits CNN: finite losses, a live scale, accuracy near fp32's."""
    import labkit as lk

    make = lambda: lk.models.CNN(in_channels=1, n_classes=10, input_size=8)
    t0 = time.perf_counter()
    _, fp32, _, _ = _digits_fit(make(), flat=False)
    trainer, fp16, history, _ = _digits_fit(make(), flat=False, amp="fp16")
    losses = [r["loss"] for r in history.steps]
    scale = trainer.scaler.get_scale()
    ok = (trainer.scaler.is_enabled() and all(map(math.isfinite, losses)) and scale > 0
          and fp16["accuracy"] >= fp32["accuracy"] - 0.05)
    return _row("AMP fp16 + GradScaler (digits CNN)", ok,
                f"test acc {fp16['accuracy']:.3f} (fp32 {fp32['accuracy']:.3f}), scale {scale:g}",
                time.perf_counter() - t0)


def check_compile() -> dict:
    """torch.compile on the digits MLP: trains, and lands where eager mode does."""
    import labkit as lk

    t0 = time.perf_counter()
    make = lambda: lk.models.MLP(64, [128], 10)
    _, eager, _, eager_s = _digits_fit(make())
    try:
        _, compiled, _, compiled_s = _digits_fit(make(), compile_model=True)
    except Exception as exc:     # e.g. no C compiler for the inductor backend
        return _row("torch.compile (digits MLP)", False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                    time.perf_counter() - t0)
    ok = abs(compiled["accuracy"] - eager["accuracy"]) <= 0.05 and math.isfinite(compiled["loss"])
    return _row("torch.compile (digits MLP)", ok,
                f"test acc {compiled['accuracy']:.3f} (eager {eager['accuracy']:.3f}); "
                f"{compiled_s:.1f} s incl. compiling vs {eager_s:.1f} s", time.perf_counter() - t0)


def check_gpt(steps: int) -> dict:
    """benchmarks/gpt.py's baby GPT on the GPU: tokens/s and validation loss."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpt

    t0 = time.perf_counter()
    result = gpt.run(steps, eval_every=None, device=DEVICE)
    # after a few hundred steps the model must be well below the loss of a uniform guess (ln 97)
    ok = math.isfinite(result["val_loss"]) and result["val_loss"] < (2.5 if steps >= 300 else 3.5)
    return _row(f"GPT benchmark ({steps} steps)", ok,
                f"val loss {result['val_loss']:.3f}, {result['tokens_per_s']:,.0f} tokens/s, "
                f"{result['ms_per_step']:.1f} ms/step", time.perf_counter() - t0)


DDP_SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    import labkit as lk

    torch.manual_seed(0)
    data = lk.data.digits(batch_size=64)
    trainer = lk.Trainer(lk.models.MLP(64, [128], 10), loss="cross_entropy", optimizer="adam", lr=1e-3,
                         metrics=["accuracy"], device="cuda")
    trainer.fit(data, epochs=3)
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "none"
    scores = trainer.evaluate(data.test)
    if trainer.rank == 0:
        json.dump({"world": trainer.world_size, "backend": backend, "accuracy": scores["accuracy"]},
                  open(sys.argv[1], "w"))
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
''')


def check_ddp() -> dict:
    """DDP over NCCL across every GPU, with torchrun; skipped (and said so) with one GPU."""
    import torch

    n = torch.cuda.device_count()
    if n < 2:
        return {"check": "DDP over NCCL", "status": "skipped", "result": f"{n} GPU: needs 2 or more",
                "seconds": 0.0}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "ddp.py", Path(tmp) / "ddp.json"
        script.write_text(DDP_SCRIPT)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               f"--nproc_per_node={n}", str(script), str(out)],
                              capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return _row(f"DDP over NCCL ({n} GPUs)", False, f"torchrun exited {proc.returncode}: {tail}",
                        time.perf_counter() - t0)
        got = json.loads(out.read_text())
    ok = got["world"] == n and got["backend"] == "nccl" and got["accuracy"] > 0.8
    return _row(f"DDP over NCCL ({n} GPUs)", ok,
                f"world {got['world']}, backend {got['backend']}, test acc {got['accuracy']:.3f}",
                time.perf_counter() - t0)


def format_table(rows: list[dict]) -> str:
    header = ["check", "status", "seconds", "result"]
    cells = [header] + [[r["check"], r["status"], f"{r['seconds']:.1f}", r["result"]] for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-notebooks", action="store_true", help="leave out the notebooks (the slowest part)")
    p.add_argument("--gpt-steps", type=int, default=500, help="steps of the GPT benchmark (default 500)")
    p.add_argument("--timeout", type=int, default=600, help="seconds a notebook cell may take (default 600)")
    p.add_argument("--out", default=None, help="folder for the executed notebooks (default: a temporary one)")
    p.add_argument("--json", default=None, metavar="FILE", help="also save the rows as JSON")
    args = p.parse_args(argv)
    if args.gpt_steps < 1:
        p.error(f"--gpt-steps must be >= 1, got {args.gpt_steps}")
    problem = no_gpu_message()
    if problem:
        print(f"gpu_check: {problem}. Nothing was checked.", flush=True)
        return NO_GPU
    sys.path.insert(0, str(ROOT))
    import torch

    import labkit as lk

    info = lk.describe()
    print(f"gpu_check: {info.get('gpu', 'CUDA GPU')} x {torch.cuda.device_count()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_notebooks:
            rows += check_notebooks(Path(args.out or Path(tmp) / "notebooks"), args.timeout)
        for check in (check_amp, check_compile, lambda: check_gpt(args.gpt_steps), check_ddp):
            t0 = time.perf_counter()
            try:
                rows.append(check())
            except Exception as exc:   # one broken check must not hide the others
                name = getattr(check, "__name__", "check").replace("check_", "")
                rows.append(_row(name, False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                                 time.perf_counter() - t0))
            print(f"  {rows[-1]['check']}: {rows[-1]['status']}", flush=True)
    print()
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["status"] in ("ok", "skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
