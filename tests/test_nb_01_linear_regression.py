"""01_linear_regression: three gradient descents against least squares, batch vs SGD vs
mini-batch, standardization, the learning-rate panel and its divergence guard (quick mode)."""
import math

import pytest

pytestmark = pytest.mark.notebook


def test_01_linear_regression_quick(run_notebook):
    nb = run_notebook("01_linear_regression")
    r = nb.records
    # NumPy, autograd and nn.Linear + SGD (Trainer) all land on torch.linalg.lstsq's solution
    assert r["all_converged"] is True and r["trainer_diverged"] is False
    for method in ("numpy", "autograd", "trainer"):
        assert r[f"max_diff_{method}"] < 1e-3, method
    # least squares fits the noise (sigma = 0.5) to about sigma**2 on the training set
    assert 0.2 < r["lstsq_train_loss"] < 0.3

    # 2 passes each at lr 0.05: batch GD has taken 2 steps and is far from the optimum; mini-batches
    # reach it; single examples get close but jitter above it
    optimum = r["lstsq_train_loss"]
    assert r["final_loss_batch"] > 10 * optimum
    assert r["final_loss_minibatch"] < 1.5 * optimum
    assert r["final_loss_minibatch"] < r["final_loss_sgd"] < r["final_loss_batch"]
    assert set(r["compare_seconds"]) == {"batch GD", "SGD (batch 1)", "mini-batch (32)"}

    # feature scales [1, 100]: the usable learning rate shrinks by ~100**2
    assert r["max_stable_lr_raw"] < 2e-4 < 0.5 < r["max_stable_lr_standardized"]
    assert r["standardized_final_loss"] < 0.3
    assert r["raw_lr_good_diverged_at"] < 10
    assert r["raw_lr_tiny_final_loss"] > 3 * r["standardized_final_loss"]
    assert 5 < r["surface_condition_number"] < 15          # feature scale 3: curvature ratio ~9

    # the panel from code: lr 1e-3 crawls, 0.1 converges, 1.5 is stopped by the DivergenceGuard
    assert r["panel_loss_good_lr"] < 0.35 < r["panel_loss_small_lr"]
    assert 1 <= r["diverged_step"] <= 50
    assert f"diverged at step {r['diverged_step']}" in r["divergence_message"]
    assert "lr=1.5" in r["divergence_message"]
    assert nb.path.stat().st_size < 1_000_000

    # common mistake 1, the sign flipped: gradient ascent, the loss climbs at every step (caught by the assert),
    # while the fixed update falls towards the optimum
    flipped = r["mistake_sign_flipped"]
    assert flipped["caught"] is True
    assert flipped["loss_after_20"] > 2 * flipped["loss_start"]
    assert flipped["fixed_loss_after_20"] < 0.1 * flipped["loss_start"]
    # common mistake 2, no mean over the batch: w becomes one value per training example, and the training loss
    # drops below what any line can reach (the least-squares loss); the fix lands on least squares
    no_mean = r["mistake_no_mean"]
    assert no_mean["caught"] is True and no_mean["w_shape"] == [600]       # 60 % of n = 1000
    assert no_mean["loss"] < 0.5 * no_mean["lstsq_loss"]
    assert no_mean["fixed_loss"] < 1.05 * no_mean["lstsq_loss"]
    assert math.isclose(no_mean["fixed_w"], no_mean["lstsq_w"], rel_tol=0.05)
    # every checkable exercise's solution passes its check
    assert r["exercise_checks"] == {"exercise 1": True, "exercise 3": True, "exercise 5": True}


def test_01_linear_regression_diverging_lr_is_caught(run_notebook):
    # lr is the learning rate of sections 3-5; 5.0 is far above 2 / lambda_max (~0.8)
    r = run_notebook("01_linear_regression", lr=5.0).records
    assert r["trainer_diverged"] is True
    assert "diverged" in r["trainer_stop_reason"] and "lr=5" in r["trainer_stop_reason"]
    assert r["trainer_weights_finite"] is True             # the guard put back finite weights
    assert r["all_converged"] is False
    assert r["max_diff_numpy"] > 1.0 and math.isfinite(r["max_diff_numpy"])
    # the rest of the notebook does not depend on lr and still runs
    assert r["diverged_step"] >= 1 and r["final_loss_minibatch"] < 1.5 * r["lstsq_train_loss"]
