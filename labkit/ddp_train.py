"""Train chapter 12's tiny GPT with lk.Trainer: in one process, or data-parallel under torchrun.

    python -m labkit.ddp_train --out runs/single.json                                   # one process
    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        -m labkit.ddp_train --out runs/ddp.json                                         # two processes

The same code does both. torchrun starts one copy of this module per process and tells each its
RANK, LOCAL_RANK and WORLD_SIZE through environment variables; lk.Trainer sees WORLD_SIZE > 1,
joins the process group (gloo on CPUs, nccl on GPUs), wraps the model in DistributedDataParallel
and gives each process its own shard of the data. --batch-size is the *global* batch: each of N
processes computes batch_size / N examples of it. Rank 0 writes the run to --out as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

import labkit as lk


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file rank 0 writes the results to")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch, over all processes (default 32)")
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--block-size", type=int, default=32)
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "n_layer", "n_embd", "block_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be an int >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    return args


def train_loader(dataset, batch_size: int, world_size: int, seed: int) -> DataLoader:
    """The training batches. Under torchrun: an ordinary shuffled loader of per-process batches,
    which the Trainer splits into one shard per process (a DistributedSampler shuffling with
    seed + epoch, process r taking every world_size-th example from position r).
    In one process: whole global batches drawn in that same shuffled order, so that step k sees
    exactly the examples the processes see together at their step k."""
    if world_size > 1:
        return DataLoader(dataset, batch_size=batch_size // world_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))
    order = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=order)


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if args.batch_size % world_size:
        raise SystemExit(f"--batch-size {args.batch_size} must be divisible by the number of processes "
                         f"({world_size}) so that every process gets an equal share")
    device = lk.pick_device(args.device)
    if device.type == "cuda" and local_processes > torch.cuda.device_count():
        raise SystemExit(f"{local_processes} processes per node need one GPU each, but this machine has "
                         f"{torch.cuda.device_count()}; use --device cpu or fewer --nproc_per_node")
    # The processes on one machine share its cores; torchrun sets OMP_NUM_THREADS=1 for them, and
    # without a setting each process would start one thread per core.
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_processes))

    data = lk.data.text_corpus(block_size=args.block_size, batch_size=args.batch_size, seed=args.seed)
    lk.seed_everything(args.seed)          # every process builds the same initial weights
    model = lk.models.GPT(data.info["vocab_size"], n_layer=args.n_layer, n_head=4, n_embd=args.n_embd,
                          block_size=args.block_size)
    trainer = lk.Trainer(model, loss="cross_entropy", optimizer="adamw", lr=args.lr, device=device)
    t0 = time.perf_counter()
    trainer.fit(train_loader(data.train.dataset, args.batch_size, world_size, args.seed), steps=args.steps)
    seconds = time.perf_counter() - t0

    result = None
    if trainer.rank == 0:
        val = trainer.evaluate(DataLoader(data.val.dataset, batch_size=256))
        result = {"world_size": trainer.world_size, "device": str(trainer.device),
                  "backend": torch.distributed.get_backend() if trainer.world_size > 1 else None,
                  "global_batch": args.batch_size, "per_process_batch": args.batch_size // world_size,
                  "steps": trainer.step, "losses": [row["loss"] for row in trainer.history.steps],
                  "val_loss": val["loss"], "seconds": seconds,
                  "weights_sum": sum(p.double().sum().item() for p in trainer.model.parameters())}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(out)                   # a reader never sees half a file
    if trainer.world_size > 1:
        torch.distributed.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
