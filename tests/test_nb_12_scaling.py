"""12_scaling: mixed precision, torch.compile, gradient accumulation and torchrun data parallelism
through lk.Trainer, each checked against the fp32 single-process baseline (quick mode)."""
import pytest
import torch

pytestmark = pytest.mark.notebook


def test_12_scaling_quick(run_notebook):
    nb = run_notebook("12_scaling")
    r = nb.records
    on_gpu = torch.cuda.is_available()

    # mixed precision: the Trainer's autocast dtype for the device; training and val loss stay close
    assert r["amp_dtype"] == ("torch.float16" if on_gpu else "torch.bfloat16")
    assert r["amp_speedup"] > 0 and set(r["amp_ms_per_step"]) == {"fp32", "amp"}
    assert abs(r["amp_val_loss"]["amp"] - r["amp_val_loss"]["fp32"]) < 0.15
    assert r["amp_val_loss"]["fp32"] < 3.5                         # trained: ln(vocab) is 4.6

    # torch.compile: quick mode captures graphs with the "eager" backend; training is unchanged and a
    # checkpoint of the compiled run loads into a plain model
    assert r["compile_backend"] == "eager" and r["compile_error"] is None
    assert r["compile_loss_gap"]["whole_run"] < 1e-3                # the eager backend runs the same kernels
    assert r["compile_val_loss"]["compiled"] == pytest.approx(r["compile_val_loss"]["eager"], abs=1e-3)
    assert r["compile_seconds"] is not None and r["compile_speedup"] > 0
    assert r["compiled_checkpoint_loads"] is True

    # gradient accumulation: the same gradients as the big batch, and the same training
    assert r["accum_grad_diff"] < 1e-5
    assert r["accum_loss_diff"]["first_steps"] < 1e-4 and r["accum_loss_diff"]["whole_run"] < 1e-2
    assert r["accum_val_loss"]["accumulated"] == pytest.approx(r["accum_val_loss"]["batch"], abs=1e-2)

    # torchrun, 2 processes: rank 0's log matches one process with the same global batch
    assert r["ddp_world_size"] == 2 and r["ddp_backend"] in ("gloo", "nccl")
    assert r["ddp_loss_diff"]["first_steps"] < 1e-4 and r["ddp_loss_diff"]["whole_run"] < 1e-2
    final = r["ddp_final_loss"]
    assert final["ddp"] == pytest.approx(final["single"], abs=1e-2)
    assert r["ddp_val_loss"]["ddp"] == pytest.approx(r["ddp_val_loss"]["single"], abs=1e-2)
    assert {row["run"] for row in r["summary"]} >= {"fp32 (baseline)", "torch.compile (eager)"}
    assert nb.path.stat().st_size < 1_000_000

