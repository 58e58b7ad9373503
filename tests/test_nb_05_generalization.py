"""05_generalization: executed in quick mode; its records must show a working notebook."""
import pytest

pytestmark = pytest.mark.notebook

GRID = [0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]


def test_05_generalization_quick(run_notebook):
    nb = run_notebook("05_generalization")
    r = nb.records
    # the large network memorizes the small training set
    assert r["baseline_train_accuracy"] >= 0.99
    capacity = r["capacity"]
    assert capacity[-1]["train_error"] <= 0.01 < capacity[0]["train_error"]
    assert capacity[-1]["val_error"] > capacity[-1]["train_error"]          # the generalization gap
    # cross-validation: one score per fold for each weight decay, and a choice from the grid
    for optimizer in ("adam", "adamw"):
        scores = r["cv_scores"][optimizer]
        assert len(scores) >= 3 and all(len(folds) >= 2 for folds in scores.values())
        assert all(0 < s < 10 for folds in scores.values() for s in folds)
    assert r["chosen_weight_decay"] in GRID and r["chosen_l2"] in GRID
    # the remedies, measured on the same validation set
    acc = r["remedy_val_accuracy"]
    assert len(acc) == 8 and all(0.5 < a <= 1 for a in acc.values()), acc
    baseline = acc["none (baseline)"]
    more = next(v for k, v in acc.items() if k.startswith("more data"))
    assert more > baseline + 0.03                                           # more data beats memorizing
    shifted = r["remedy_shifted_val_accuracy"]
    augmented = next(v for k, v in shifted.items() if k.startswith("augmentation"))
    assert augmented > shifted["none (baseline)"] + 0.15                   # shifts teach shift invariance
    assert r["l1_near_zero_fraction"]["L1"] > r["l1_near_zero_fraction"]["no penalty"]
    assert r["chosen_remedy"] in acc and acc[r["chosen_remedy"]] == max(acc.values())
    assert r["test_accuracy"] > 0.85
    assert nb.path.stat().st_size < 1_000_000
    assert r["exercise_checks"] == {"exercise 2": True, "exercise 4": True}


def test_05_generalization_checks_its_parameters(run_notebook):
    from papermill.exceptions import PapermillExecutionError
    with pytest.raises(PapermillExecutionError, match="parameter 'epochs' must be int"):
        run_notebook("05_generalization", epochs="ten")
