"""Trainer under torchrun: two CPU processes (gloo) match one process with the same global batch."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labkit as lk

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    import labkit as lk

    torch.set_num_threads(1)

    def data(per_process_batch):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(256, 6, generator=g)
        y = torch.sin(x[:, :1]) + 0.5 * x[:, 1:2]
        return DataLoader(TensorDataset(x, y), batch_size=per_process_batch)

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 1))

    if __name__ == "__main__":
        out, global_batch = sys.argv[1], int(sys.argv[2])
        world = int(os.environ.get("WORLD_SIZE", "1"))
        trainer = lk.Trainer(model(), loss="mse", optimizer="sgd", lr=0.1, device="cpu",
                             callbacks=[lk.Checkpoint(os.path.join(os.path.dirname(out), "ck"),
                                                      monitor="loss", save_best=False)])
        trainer.fit(data(global_batch // world), epochs=3)
        if trainer.rank == 0:
            json.dump({"world": trainer.world_size, "steps": trainer.step,
                       "losses": [r["loss"] for r in trainer.history.steps],
                       "weight": trainer.model[0].weight.sum().item()}, open(out, "w"))
        if world > 1:
            torch.distributed.barrier()          # rank 0 has written its file
            torch.distributed.destroy_process_group()
''')


@pytest.mark.slow
def test_trainer_under_torchrun_matches_single_process(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    single, multi = tmp_path / "single.json", tmp_path / "multi.json"
    subprocess.run([sys.executable, str(script), str(single), "32"], check=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(multi), "32"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = json.loads(single.read_text()), json.loads(multi.read_text())
    assert a["world"] == 1 and b["world"] == 2
    assert a["steps"] == b["steps"] == 3 * 256 // 32
    # unshuffled data: rank r gets samples r, r+2, r+4, ... so each global batch is the same set
    assert b["losses"] == pytest.approx(a["losses"], rel=1e-4, abs=1e-6)
    assert b["weight"] == pytest.approx(a["weight"], rel=1e-4)
    assert (tmp_path / "ck" / "last.pt").exists()           # written by rank 0 only


def test_single_process_has_rank_zero():
    trainer = lk.Trainer(nn.Linear(2, 1), device="cpu")
    assert (trainer.rank, trainer.world_size) == (0, 1) and trainer.net is trainer.model
    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    trainer.fit(loader, epochs=1)
    assert trainer.step == 2
