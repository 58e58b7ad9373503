"""Chapter 03 (multi-layer perceptrons), executed in quick mode: its results, not just that it runs."""
import pytest

pytestmark = pytest.mark.notebook


def test_03_mlp_quick(run_notebook):
    nb = run_notebook("03_mlp")
    r = nb.records
    # backpropagation by hand: equal to autograd in float64, and confirmed by finite differences
    assert r["gradcheck"] is True
    assert r["backprop_max_error"] <= 1e-8
    # XOR: a line fails, one hidden layer succeeds
    assert r["xor_accuracy"]["linear"] < 0.75 < r["xor_accuracy"]["mlp"]
    # the digits MLP [64, 128, 128, 10]
    assert r["mlp_param_count"] == (64 + 1) * 128 + (128 + 1) * 128 + (128 + 1) * 10
    assert r["mlp_test_accuracy"] > 0.9
    table = r["width_depth_table"]
    assert len(table) == 3 and [row["params"] for row in table] == sorted(row["params"] for row in table)
    assert all(row["s_per_epoch"] > 0 and 0 < row["val_accuracy"] <= 1 for row in table)
    # dead and saturated units: the too-high learning rate and the bad init are the unhealthy runs
    health = r["unit_health"]
    assert max(health["ReLU, lr=0.001"]["final_per_layer"]) < 0.1
    assert max(health["ReLU, lr=0.1 (too high)"]["final_per_layer"]) > 0.5
    assert min(health["tanh, weights x10 (bad init)"]["final_per_layer"]) > 0.3
    assert max(health["tanh, default init"]["final_per_layer"]) < 0.05
    assert health["tanh, weights x10 (bad init)"]["val_accuracy"] < health["tanh, default init"]["val_accuracy"]
    assert nb.path.stat().st_size < 1_000_000
    assert r["exercise_checks"] == {"exercise 3": True, "exercise 5": True}


def test_03_parameters_are_used(run_notebook):
    r = run_notebook("03_mlp", width=32, depth=1, activation="tanh", high_lr=0.001).records
    assert r["mlp_param_count"] == (64 + 1) * 32 + (32 + 1) * 10
    assert r["mlp_test_accuracy"] > 0.85
    # a "too high" learning rate that is in fact the sensible one kills no units
    assert max(r["unit_health"]["ReLU, lr=0.001 (too high)"]["final_per_layer"]) < 0.1


def test_03_layer_stats_and_playground(run_notebook):
    r = run_notebook("03_mlp").records
    # LayerStats: the too-high learning rate kills a large share of the second layer's ReLUs
    assert r["layer_stats"]["dead_high_lr"]["2"] > 0.3
    # six sigmoid layers: the first layer's gradient is a small fraction of the last one's
    grads = r["layer_stats"]["grad_norms_step1"]
    assert len(grads) == 7 and r["layer_stats"]["first_over_last_grad_sigmoid"] < 0.01
    assert grads == sorted(grads)              # shrinking layer by layer on the way back
    # the playground: a ring needs a hidden layer (or squared features)
    pg = r["playground_circles"]
    assert pg["no_hidden"] < 0.8 < pg["four_tanh"]
