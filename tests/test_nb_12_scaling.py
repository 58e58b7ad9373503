"""12_scaling: mixed precision, torch.compile, gradient accumulation and torchrun data parallelism
through lk.Trainer, each checked against the fp32 single-process baseline (quick mode)."""
import pytest
import torch

pytestmark = pytest.mark.notebook


def test_12_scaling_quick(run_notebook):
    nb = run_notebook("12_scaling")
    r = nb.records
    on_gpu = torch.cuda.is_available()

    # Runs "train alike" when their val losses end within a third of what the fp32 baseline learned
    # (its fall from ln V). Not an absolute gap: where a 30-step run ends depends on the CPU's kernels
    # (bf16 rounds differently with and without bf16 instructions) and the thread count.
    learned = r["fp32_learned"]
    assert learned > 0.5                                           # the baseline did learn something

    def alike(a, b):
        return abs(a - b) < learned / 3

    # mixed precision: the Trainer's autocast dtype for the device; it trains like fp32
    assert r["amp_dtype"] == ("torch.float16" if on_gpu else "torch.bfloat16")
    assert r["amp_speedup"] > 0 and set(r["amp_ms_per_step"]) == {"fp32", "amp"}
    assert alike(r["amp_val_loss"]["amp"], r["amp_val_loss"]["fp32"])

    # torch.compile: quick mode captures graphs with the "eager" backend; training is unchanged and a
    # checkpoint of the compiled run loads into a plain model
    assert r["compile_backend"] == "eager" and r["compile_error"] is None
    assert r["compile_loss_gap"]["whole_run"] < 1e-3                # the eager backend runs the same kernels
    assert r["compile_val_loss"]["compiled"] == pytest.approx(r["compile_val_loss"]["eager"], abs=1e-3)
    assert r["compile_seconds"] is not None and r["compile_speedup"] > 0
    assert r["compiled_checkpoint_loads"] is True

    # gradient accumulation: the same gradients as the big batch, and the same training
    assert r["accum_grad_diff"] < 1e-5
    # (fp32 in another summation order: identical first steps, then float rounding that 30 steps
    # amplify to ~1e-4 whatever the kernels; 1e-2 leaves two orders of magnitude of margin)
    assert r["accum_loss_diff"]["first_steps"] < 1e-4 and r["accum_loss_diff"]["whole_run"] < 1e-2
    assert alike(r["accum_val_loss"]["accumulated"], r["accum_val_loss"]["batch"])

    # torchrun, 2 processes: rank 0's log matches one process with the same global batch
    assert r["ddp_world_size"] == 2 and r["ddp_backend"] in ("gloo", "nccl")
    assert r["ddp_loss_diff"]["first_steps"] < 1e-4 and r["ddp_loss_diff"]["whole_run"] < 1e-2
    final = r["ddp_final_loss"]
    assert final["ddp"] == pytest.approx(final["single"], abs=1e-2)
    assert alike(r["ddp_val_loss"]["ddp"], r["ddp_val_loss"]["single"])
    assert {row["run"] for row in r["summary"]} >= {"fp32 (baseline)", "torch.compile (eager)"}
    assert nb.path.stat().st_size < 1_000_000

