"""00_setup: the environment check, the autograd asserts and the first ControlPanel run (quick mode)."""
import nbformat
import pytest

pytestmark = pytest.mark.notebook

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def widget_states(executed) -> dict:
    """{model_id: state} of the widgets saved in an executed notebook's metadata."""
    models = executed.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return {model_id: m["state"] for model_id, m in models.items()}


def test_00_setup_quick(run_notebook):
    nb = run_notebook("00_setup")
    r = nb.records
    # quick mode: 3 epochs of 600 training examples in batches of 8 (75 steps an epoch)
    assert r["toy_steps"] == 3 * 75
    # training helped, and no model beats the noise floor 0.5**2 = 0.25 by much
    assert r["toy_final_loss"] < 0.5 * r["toy_first_loss"]
    assert 0.15 < r["toy_final_loss"] < 0.8
    assert nb.path.stat().st_size < 1_000_000
    # the solution of exercise 4 passes its check (a function checked against autograd)
    assert r["exercise_checks"] == {"exercise 4": True}

    executed = nbformat.read(nb.path, as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    # the panel is a cell's own output (the browser test finds its controls there) ...
    shown = [c for c in executed.cells if c.cell_type == "code"
             and any(WIDGET_VIEW in o.get("data", {}) for o in c.get("outputs", []))]
    assert len(shown) == 1 and "lk.ControlPanel(" in shown[0].source
    # ... with a learning-rate slider and Train/Stop buttons, and its epochs slider back at 200
    # after the short run from code, so that pressing Train gives a run long enough to watch
    states = widget_states(executed).values()
    by_description = {s.get("description"): s for s in states}
    assert by_description["learning rate"]["_model_name"] == "FloatLogSliderModel"
    assert by_description["epochs"]["value"] == 200
    assert {"Train", "Stop", "Reset"} <= set(by_description)
