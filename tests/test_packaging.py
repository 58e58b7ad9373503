"""The install story: pyproject.toml, environment.yml and the README agree."""
import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's
CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def _spec(requirement: str) -> str:
    return requirement.strip()[len(_name(requirement)):].replace(" ", "")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _environment():
    """(conda requirements, pip requirements) of environment.yml, read without a YAML library."""
    conda, pip, in_pip, in_deps = {}, {}, False, False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        stripped = line.split("#")[0].rstrip()
        if re.match(r"^\w", stripped):                  # a top-level key: name, channels, dependencies
            in_deps = stripped.startswith("dependencies:")
            continue
        if not in_deps:
            continue
        if stripped.strip() == "- pip:":
            in_pip = True
            continue
        m = re.match(r"^\s*-\s+(.+)$", stripped)
        if not m:
            continue
        req = m.group(1).strip()
        target = pip if in_pip and line.startswith("      ") else conda
        if req not in ("pip", "-e .") and not req.startswith("python"):
            target[_name(req)] = _spec(req)
    return conda, pip


def test_environment_yml_matches_pyproject_dependencies():
    project = _pyproject()
    wanted = {}
    for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
        wanted[CONDA_NAMES.get(_name(req), _name(req))] = _spec(req)
    conda, pip = _environment()
    listed = {**conda, **pip}
    assert listed == wanted, (
        f"environment.yml and pyproject.toml disagree: only in environment.yml "
        f"{sorted(set(listed) - set(wanted))}, only in pyproject {sorted(set(wanted) - set(listed))}, "
        f"different versions {sorted(k for k in set(listed) & set(wanted) if listed[k] != wanted[k])}")


def test_python_version_floor_agrees():
    floor = _pyproject()["requires-python"]
    assert f"python{floor}" in (ROOT / "environment.yml").read_text().replace(" ", "")


def test_readme_opens_with_the_three_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ['pip install -e ".[dev]"', "labkit run notebooks --quick", "pytest"]
    assert "pytest" in (ROOT / ".ci" / "run").read_text().splitlines()
    assert 'pip install -e ".[dev]"' in (ROOT / ".ci" / "run").read_text()


def test_readme_table_lists_every_notebook():
    text = (ROOT / "README.md").read_text()
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"`{nb.stem}`" in text, f"README's notebook table does not list {nb.stem}"


def test_console_script_and_public_names():
    assert _pyproject()["scripts"]["labkit"] == "labkit.cli:main"
    import labkit as lk
    for name in ["Trainer", "History", "Callback", "EarlyStopping", "Checkpoint", "LRSchedule",
                 "DivergenceGuard", "ProgressBar", "LivePlot", "ControlPanel", "record", "records",
                 "seed_everything", "pick_device", "data", "models"]:
        assert hasattr(lk, name), name
    assert callable(lk.models.MLP)


@pytest.mark.parametrize("nb", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_notebook_conventions(nb):
    cells = json.loads(nb.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters' (papermill)"
    source = "".join(tagged[0]["source"])
    for name in ("quick", "seed", "device"):
        assert re.search(rf"^{name}\s*=", source, re.M), f"parameters cell has no {name!r}"
    assert "lk.quick_default()" in source, "quick's default should follow LABKIT_QUICK (nbval passes no parameters)"
    for c in cells:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, "saved with outputs"
    text = "".join("".join(c["source"]) for c in cells)
    assert "lk.record(" in text, "a notebook reports its key results with lk.record"
    assert "xercise" in text, "a notebook ends with exercises"
    assert re.match(r"\d\d_[a-z0-9_]+$", nb.stem)


@pytest.mark.parametrize("nb", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_papermill_infers_every_parameter(nb):
    """papermill reads the parameters cell line by line; a comment containing '=' hides a parameter."""
    from papermill.inspection import _infer_parameters
    from papermill.iorw import load_notebook_node
    names = [p.name for p in _infer_parameters(load_notebook_node(str(nb)))]
    assert {"quick", "seed", "device"} <= set(names), f"papermill infers only {names}"


def test_readme_zh_cn_has_the_three_commands_and_the_course_table():
    """README.zh-CN.md is a translation of README.md: the same commands first and the same course table."""
    zh_path = ROOT / "README.zh-CN.md"
    assert zh_path.exists(), "README.zh-CN.md (the Chinese README) is missing"
    zh = zh_path.read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", zh, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ['pip install -e ".[dev]"', "labkit run notebooks --quick", "pytest"]
    en = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "README.zh-CN.md" in en, "README.md does not link to the Chinese README"
    row = re.compile(r"^\| `(\d\d_[a-z0-9_]+)` \|.*\| ([^|]+) \|$", re.M)
    en_rows = dict(row.findall(en))
    zh_rows = dict(row.findall(zh))
    assert en_rows, "README.md has no course table"
    for name, time in en_rows.items():
        assert name in zh_rows, f"README.zh-CN.md's course table has no row for {name}"
        assert zh_rows[name].strip() == time.strip(), (
            f"{name}: README.zh-CN.md says {zh_rows[name].strip()!r}, README.md {time.strip()!r}")
    assert set(zh_rows) == set(en_rows), f"rows only in README.zh-CN.md: {sorted(set(zh_rows) - set(en_rows))}"
    assert "notebooks/zh/" in zh and "notebooks/zh/glossary.md" in zh
NOTEBOOK_FILES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _cells(nb):
    return json.loads(nb.read_text())["cells"]


def _source(cell) -> str:
    return "".join(cell["source"])


def _is_solution(cell) -> bool:
    return "solution" in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("nb", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_every_notebook_is_executed_by_its_test(nb):
    """Each notebook runs once per `pytest`, through papermill in its own test (nbval is not run on top)."""
    test = ROOT / "tests" / f"test_nb_{nb.stem}.py"
    assert test.is_file(), f"{nb.name} has no test file {test.name}"
    assert f'run_notebook("{nb.stem}"' in test.read_text(), f"{test.name} never executes {nb.stem}"


@pytest.mark.parametrize("nb", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_every_exercise_has_a_solution(nb):
    """Exercises are the numbered items under '## Exercises'; each has a hidden `solution` cell that
    starts '# Solution to exercise N' and runs headless; questions under 'Check your understanding'
    have hidden answers."""
    cells = _cells(nb)
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
              and re.search(r"^#+\s*Exercises", _source(c), re.M)]
    assert starts, "no '## Exercises' section"
    numbers = []
    for c in cells[starts[0]:]:
        if c["cell_type"] == "markdown" and not _is_solution(c):
            if re.search(r"^#+\s*Check your understanding", _source(c), re.M | re.I):
                break
            numbers += [int(n) for n in re.findall(r"^(\d+)\.\s", _source(c), re.M)]
    assert numbers, "no numbered exercises"
    assert numbers == list(range(1, len(numbers) + 1)), f"exercises numbered {numbers}"
    solved = [int(m.group(1)) for c in cells if c["cell_type"] == "code" and _is_solution(c)
              for m in [re.match(r"\s*# Solution to exercise (\d+)", _source(c))] if m]
    assert sorted(solved) == numbers, f"exercises {numbers}, solutions for {sorted(solved)}"
    for c in cells:
        if _is_solution(c):
            assert c["metadata"].get("jupyter", {}).get("source_hidden") is True, \
                "solution cells open collapsed (jupyter.source_hidden)"
    quiz = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
            and re.search(r"^#+\s*Check your understanding", _source(c), re.M | re.I)]
    assert quiz, "no 'Check your understanding' questions"
    answers = [c for c in cells[quiz[0]:] if c["cell_type"] == "markdown" and _is_solution(c)]
    assert answers, "the questions have no hidden answers"


TIME = re.compile(r"\*\*Time:\*\*\s*about ([\d.]+) min[^(]*\(quick(?: mode)?: ~?(\d+) s\)")


@pytest.mark.parametrize("nb", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_readme_times_are_the_notebook_headers(nb):
    """One source of truth: the README's time column repeats each notebook's own header."""
    header = TIME.search(_source(_cells(nb)[0]))
    assert header, "the first cell states '**Time:** about N min on a 2-core CPU (quick mode: ~N s)'"
    full, quick = header.groups()
    row = next((line for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith(f"| `{nb.stem}`")), None)
    assert row is not None, f"README's table has no row for {nb.stem}"
    assert row.rstrip(" |").endswith(f"| {full} min / {quick} s"), \
        f"README says {row.split('|')[-2].strip()!r}, the notebook's header {full} min / {quick} s"
