"""Chapter 02 (classification), executed in quick mode: its results, not just that it runs."""
import pytest

pytestmark = pytest.mark.notebook


def test_02_classification_quick(run_notebook):
    nb = run_notebook("02_classification")
    r = nb.records
    # hand-derived gradients and from-scratch training agree with PyTorch
    assert r["bce_grad_error"] < 1e-12
    assert r["scratch_vs_torch_weight_difference"] < 1e-4
    # a straight line on two moons: clearly better than chance, never perfect
    assert 0.75 < r["logistic_test_accuracy"] < 0.95
    # sigmoid + log gives inf/NaN, BCELoss a zero gradient, BCEWithLogitsLoss the exact one
    demo = r["logits_demo"]
    assert demo["naive_nonfinite_losses"] >= 3
    assert demo["bceloss_grad_at_z100"] == 0.0 and demo["with_logits_grad_at_z100"] == 1.0
    # softmax regression on the digits, and the metrics computed three ways
    assert r["softmax_test_accuracy"] > 0.9
    # the three common mistakes, each caught, against the real from-scratch run (same start, same steps)
    m = r["mistakes_02"]
    assert all(m[k]["caught"] for k in ("linear_residual", "bias_twice", "gradient_unused"))
    real = m["real"]["test_accuracy"]
    assert m["linear_residual"]["test_accuracy"] < real - 0.1      # its line sits where z - y's fit crosses 0
    assert m["gradient_unused"]["test_accuracy"] < real            # a random direction, only the offset fitted
    # circles, generator factor 0.5: the best half-plane is right about two thirds of the time, not a coin's half
    assert 0.6 < r["circles_best_line_accuracy"] < 0.75
    assert r["exercise_checks"] == {"exercise 1": True, "exercise 4": True, "exercise 5": True}
    metrics = r["digits_metrics"]
    assert set(metrics) == {"accuracy", "precision", "recall", "f1"}
    assert metrics["accuracy"] == pytest.approx(r["softmax_test_accuracy"], abs=1e-6)
    assert all(0.85 < v <= 1 for v in metrics.values())
    sweep = r["lr_sweep_final_val_accuracy"]
    assert sweep["0.01"] < sweep["1"] - 0.2            # too small a learning rate is far behind after 3 epochs
    # class imbalance: doing nothing scores 95 % accuracy and F1 0
    imbalance = r["imbalance"]
    majority, plain, weighted = (imbalance[k] for k in ("always_the_common_class", "logistic_regression",
                                                        "logistic_pos_weight"))
    assert majority["accuracy"] == pytest.approx(0.95, abs=0.01) and majority["f1"] == 0.0
    assert plain["accuracy"] >= majority["accuracy"] and plain["f1"] > 0
    assert weighted["recall"] > plain["recall"] and weighted["precision"] < plain["precision"]
    assert nb.path.stat().st_size < 1_000_000


def test_02_parameters_are_used(run_notebook):
    # blobs that a line separates (seed 1), and a rare class of 20 % instead of 5 %
    r = run_notebook("02_classification", kind="blobs", seed=1, minority=0.2).records
    assert r["logistic_test_accuracy"] > 0.95
    assert r["imbalance"]["always_the_common_class"]["accuracy"] == pytest.approx(0.8, abs=0.01)
