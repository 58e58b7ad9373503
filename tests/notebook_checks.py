"""Checks shared by the notebook tests."""
import nbformat


def assert_exercises_solved(path, exercises: int, passed_checks: int) -> None:
    """Every exercise has a hidden solution cell that ran headless; every check in them passed."""
    nb = nbformat.read(path, as_version=4)
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", []) and c.cell_type == "code"]
    assert [c.source.splitlines()[0] for c in solutions] == \
        [f"# Solution to exercise {n}" for n in range(1, exercises + 1)]
    for cell in solutions:
        assert cell.metadata["jupyter"]["source_hidden"] is True
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "✗" not in text and not any(o.output_type == "error" for o in cell.outputs), text
    assert sum("✓" in "".join(o.get("text", "") for o in c.outputs) for c in solutions) == passed_checks
