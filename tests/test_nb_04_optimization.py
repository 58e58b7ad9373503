"""04_optimization: executed in quick mode; its records must show a working notebook."""
import math

import pytest

pytestmark = pytest.mark.notebook

OPTIMIZERS = {"GD", "SGD", "momentum", "AdaGrad", "RMSProp", "Adam"}
SCHEDULES = {"fixed", "step", "exponential", "cosine", "warm-up", "one-cycle"}


def test_04_optimization_quick(run_notebook):
    nb = run_notebook("04_optimization")
    r = nb.records
    # each optimizer written from scratch took the same 100 steps as torch.optim's, up to float32 rounding
    # (one relative epsilon per step at the weights' scale: the notebook records the bound it asserted)
    assert set(r["optimizer_max_abs_diff"]) == OPTIMIZERS
    for name, diff in r["optimizer_max_abs_diff"].items():
        assert diff <= r["optimizer_tolerance"][name] < 1e-4, (name, diff)   # far below a wrong step (~lr = 1e-3)
    # common mistake: Adam without bias correction; the first step is (1 - b1) / sqrt(1 - b2) = 3.16 times the
    # corrected one (exact when both start from the same weights and gradient; eps moves it by < 1 %)
    adam = r["adam_no_bias_correction"]
    assert adam["caught"] is True
    assert adam["ratio_step_1"] == pytest.approx(adam["theory_step_1"], rel=0.02)
    assert adam["max_ratio_first_20"] > 2
    # at ten times the tuned rate, the uncorrected early steps overshoot: far worse after the same 100 steps
    assert adam["end_loss"]["without_lr_0.03"] > 2 * adam["end_loss"]["with_lr_0.03"]
    assert r["optimizer_shadowed_caught"] is True
    # one-cycle ends at peak / (25 * 10**4): starts at peak/25, ends 10**4 below its start
    assert r["one_cycle_final_lr"] == pytest.approx(0.3 / 25e4, rel=1e-6)
    assert r["exercise_checks"] == {"exercise 1": True, "exercise 2": True, "exercise 3": True}
    # ... and trained the common task: far below the loss of guessing (ln 10 = 2.3)
    assert set(r["optimizer_final_loss"]) == OPTIMIZERS
    assert all(0 <= loss < 0.6 for loss in r["optimizer_final_loss"].values()), r["optimizer_final_loss"]
    assert all(acc > 0.85 for acc in r["optimizer_val_accuracy"].values()), r["optimizer_val_accuracy"]
    # every schedule trained (none diverged to chance level)
    assert set(r["schedule_val_accuracy"]) == SCHEDULES
    assert all(acc > 0.5 for acc in r["schedule_val_accuracy"].values()), r["schedule_val_accuracy"]
    # the range test suggests a sane rate for SGD + momentum, and training with it works
    assert 1e-3 < r["lr_find_suggestion"] < 2.0
    assert r["lr_find_val_accuracy"] > 0.85
    # batch size: gradient noise falls and throughput rises with the batch size
    rows = r["batch_size_table"]
    assert len(rows) >= 2 and [row["batch_size"] for row in rows] == sorted(row["batch_size"] for row in rows)
    noise = [row["gradient_noise"] for row in rows]
    assert all(a > b for a, b in zip(noise, noise[1:])), noise
    # throughput is measured and shown, not asserted: it is wall-clock time on a possibly loaded machine
    assert all(row["samples_per_second"] > 0 for row in rows)
    assert [row["steps_per_epoch"] for row in rows] == sorted((row["steps_per_epoch"] for row in rows), reverse=True)
    for row in rows:
        assert row["lr_scaled"] == pytest.approx(row["lr_same"] * row["batch_size"] / 64)
        assert math.isfinite(row["val_accuracy_scaled_lr"]) and 0 <= row["val_accuracy_scaled_lr"] <= 1
    assert nb.path.stat().st_size < 1_000_000


def test_04_optimization_checks_its_parameters(run_notebook):
    from papermill.exceptions import PapermillExecutionError
    with pytest.raises(PapermillExecutionError, match="parameter 'momentum' must be float"):
        run_notebook("04_optimization", momentum="high")


def test_04_surface_explorer_titles_and_play_button(run_notebook):
    import json
    import re
    nb = json.loads(run_notebook("04_optimization").path.read_text())
    figures = [o["data"]["application/vnd.plotly.v1+json"] for c in nb["cells"] for o in c.get("outputs", [])
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    surfaces = [f for f in figures if f.get("frames") and "Rosenbrock" in str(f["layout"].get("title", ""))]
    assert surfaces, "no Rosenbrock surface figure in the executed notebook"
    for fig in surfaces:
        title = fig["layout"]["title"]["text"]
        # at most 3 significant digits (a slider's 10**0.4 reads 2.51, not 2.51189), on two lines
        assert "<br>" in title and not re.search(r"\d\.\d{4,}", title), title
        # ▶ and the step slider redraw the frame, so the contour stays under the moving points
        play = fig["layout"]["updatemenus"][0]["buttons"][0]["args"][1]
        assert play["frame"]["redraw"] is True
