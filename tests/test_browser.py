"""JupyterLab in a real browser: headless Chromium, driven by Playwright.

A module fixture starts `jupyter lab` on 127.0.0.1 (a free port, a random token) serving a
temporary copy of notebooks/00_setup.ipynb, so autosave never touches the repository. The tests
run all its cells and then use its ControlPanel the way a learner does: move the learning-rate
slider, press Train, watch the curve grow, press Stop.

The browser tests skip, saying why, when chromium or playwright is missing. Playwright's own
browser download is not needed: the tests launch the system's chromium.
Set LABKIT_SCREENSHOTS=<folder> to keep a screenshot of the panel while it trains.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:                     # the browser tests skip, saying so
    expect = sync_playwright = None

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_setup.ipynb"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# What JupyterLab shows when a front-end extension fails, or is missing (then a widget's
# text/plain repr shows instead of the widget).
BROKEN_OUTPUT_TEXT = ("Error displaying widget", "Loading widget...", "Could not render content",
                      "Javascript Error", "VBox(children=", "FigureWidget(")
# The two JupyterLab extensions the course needs: ipywidgets' manager and plotly's renderer.
EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "jupyterlab-plotly")

# Seconds. Two shared cores: JupyterLab takes 10-20 s to start, the notebook about as long to run.
START_TIMEOUT = 120
RUN_ALL_TIMEOUT = 180
UI_TIMEOUT = 15             # a widget reacting to a click or a key, a status line changing
STOP_WITHIN = 1.0           # from pressing Stop to the status saying so (training is over by then)


def _missing_browser_tools() -> str | None:
    if CHROMIUM is None:
        return "chromium is not installed (Debian: apt-get install chromium)"
    if sync_playwright is None:
        return "playwright is not installed (pip install playwright; its browser download is not needed)"
    return None


# -- JupyterLab server -----------------------------------------------------------------------------

@dataclass
class Lab:
    url: str                    # http://127.0.0.1:PORT
    token: str
    root: Path                  # what the server serves: a copy of the notebook
    log: Path

    def page_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_settings(folder: Path) -> None:
    """User settings for this server only: start the notebook's kernel without asking (the
    'Select Kernel' dialog otherwise appears, depending on timing, and blocks Run All); no
    'get Jupyter news?' toast over the notebook and no update check (the machine may be offline)."""
    settings = {"notebook-extension/tracker": {"autoStartDefaultKernel": True},
                "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
    for plugin, values in settings.items():
        target = folder / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A private JupyterLab: 127.0.0.1 only, a random token, no browser opened by the server;
    shut down, kernels included, after the module's tests."""
    missing = _missing_browser_tools()
    if missing:
        pytest.skip(f"browser tests need chromium and playwright: {missing}")
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    _lab_settings(base / "settings")
    port, token = _free_port(), secrets.token_hex(24)
    env = dict(os.environ)
    env.pop("LABKIT_FRONTEND", None)            # the point is to see what labkit detects by itself
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
               LABKIT_QUICK="1",                # the notebook's quick path, as under pytest
               JUPYTER_RUNTIME_DIR=str(base / "runtime"))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser",
               "--allow-root",                  # CI containers often run as root
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.terminals_enabled=False",
               f"--LabApp.user_settings_dir={base / 'settings'}",
               f"--LabApp.workspaces_dir={base / 'workspaces'}"]
    log = base / "jupyterlab.log"
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Lab(f"http://127.0.0.1:{port}", token, root, log)
    try:
        _wait_until_up(server, process)
        yield server
    finally:
        _shut_down(server, process)


def _wait_until_up(server: Lab, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            server.api("/api/status", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)                    # polling a server that is starting: nothing to wait on
    pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT} s:\n{server.log_tail()}")


def _shut_down(server: Lab, process: subprocess.Popen) -> None:
    """/api/shutdown stops the kernels, then the server; a kernel whose server is gone exits
    by itself too (ipykernel watches its parent)."""
    if process.poll() is None:
        with contextlib.suppress(OSError):
            server.api("/api/shutdown", method="POST", timeout=10)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the browser and the notebook -------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(lab):
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def screenshot_on_failure(page, path: Path):
    """Any failure inside the block saves a screenshot of the page and names it in the error."""
    try:
        yield
    except BaseException as error:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of the failure: {path}")
            error.add_note(f"screenshot of the failure: {path}")
        raise


@dataclass
class Notebook:
    page: object                # playwright Page
    panel: object               # Locator: the output that holds the ControlPanel
    run_all_seconds: float
    page_errors: list           # uncaught errors in the page's JavaScript


# Waits for Run All: every code cell numbered, or a traceback in an output (run-all stops there).
CELLS_DONE_JS = """(expected) => {
    const outputs = [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')];
    const error = outputs.map(o => o.textContent).find(t => t.includes('Traceback (most recent call last)'));
    if (error) return {error: error.slice(0, 3000)};
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
        .map(p => p.textContent.trim());
    return prompts.length === expected && prompts.every(p => /^\\[\\d+\\]:$/.test(p)) ? {done: true} : false;
}"""

# What the panel shows: its status line, the step and lr in it, and the live chart's data.
STATUS_CSS = ".widget-hbox:has(> .jupyter-button) + .widget-html .widget-html-content"
PROGRESS_JS = """(panel) => {
    const text = panel.querySelector('%s').textContent;
    const number = (re) => { const m = text.match(re); return m ? parseFloat(m[1]) : null; };
    const chart = panel.querySelector('.js-plotly-plot');
    const xs = chart && chart.data && chart.data.length ? chart.data[0].x || [] : [];
    const line = chart && chart.querySelector('.scatterlayer .trace path.js-line');
    return {text, step: number(/step (\\d+)/), lr: (text.match(/lr ([0-9.e+-]+)/) || [])[1] || null,
            lastX: xs.length ? xs[xs.length - 1] : -1, points: xs.length,
            drawnPoints: line ? (line.getAttribute('d') || '').split(/[ML]/).length - 1 : 0};
}""" % STATUS_CSS


def _code_cells(path: Path) -> int:
    return sum(cell["cell_type"] == "code" for cell in json.loads(path.read_text())["cells"])


@pytest.fixture(scope="module")
def notebook(lab, browser, tmp_path_factory):
    """The course's first notebook, opened in JupyterLab with all its cells run."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT * 1000)
    page_errors: list = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    shot = tmp_path_factory.mktemp("screenshots") / "run_all_failed.png"
    with screenshot_on_failure(page, shot):
        page.goto(lab.page_url(NOTEBOOK.name), timeout=START_TIMEOUT * 1000)
        # Run All before the kernel is up runs nothing: wait for the status bar's "| Idle".
        expect(page.get_by_title(f"Change kernel for {NOTEBOOK.name}")).to_have_text(
            re.compile(r"\| Idle$"), timeout=START_TIMEOUT * 1000)
        start = time.perf_counter()
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        result = page.wait_for_function(CELLS_DONE_JS, arg=_code_cells(lab.root / NOTEBOOK.name),
                                        timeout=RUN_ALL_TIMEOUT * 1000).json_value()
        assert "error" not in result, f"a cell of {NOTEBOOK.name} failed in JupyterLab:\n{result['error']}"
        run_all = time.perf_counter() - start
        # CSS, not roles: JupyterLab lays out off-screen cells lazily (content-visibility: auto),
        # which keeps their widgets out of the accessibility tree until they are scrolled to.
        panel = page.locator(".jp-OutputArea-output").filter(has=_button(page, "Train"))
        panel.scroll_into_view_if_needed()
        panel.wait_for()
    yield Notebook(page, panel, run_all, page_errors)
    page.close()


# -- the tests ----------------------------------------------------------------------------------------

@pytest.mark.browser
def test_control_panel_and_chart_render(notebook, tmp_path):
    page, panel = notebook.page, notebook.panel
    with screenshot_on_failure(page, tmp_path / "render.png"):
        slider = panel.locator(".widget-slider").filter(has_text="learning rate")
        expect(slider.locator(".noUi-handle")).to_be_visible()
        expect(slider.locator(".widget-readout")).to_have_text(re.compile(r"^\d"))
        expect(_button(panel, "Train")).to_be_enabled()
        expect(_button(panel, "Stop")).to_be_disabled()
        # The notebook trained a few epochs from code (panel.train()): the chart shows those steps.
        expect(panel.locator(STATUS_CSS)).to_contain_text("Done: step")
        expect(panel.locator(".js-plotly-plot .main-svg").first).to_be_visible()
        progress = panel.evaluate(PROGRESS_JS)
        assert progress["points"] > 0 and progress["lastX"] == progress["step"], progress
        assert progress["drawnPoints"] > 1, f"the loss curve has no drawn line: {progress}"


@pytest.mark.browser
def test_front_end_extensions_render_every_output(notebook, tmp_path):
    page = notebook.page
    with screenshot_on_failure(page, tmp_path / "extensions.png"):
        for text in BROKEN_OUTPUT_TEXT:
            expect(page.locator(".jp-OutputArea-output").get_by_text(text)).to_have_count(0)
        # Every plotly output drew its SVG (the panel's live chart at least).
        charts = page.locator(".jp-OutputArea-output .js-plotly-plot")
        assert charts.count() >= 1
        for chart in charts.all():
            chart.scroll_into_view_if_needed()
            expect(chart.locator(".main-svg").first).to_be_visible()
        assert not notebook.page_errors, f"errors in the page: {notebook.page_errors}"


@pytest.mark.browser
def test_labkit_sees_a_live_front_end(notebook, tmp_path):
    """JupyterLab sends the cell id with each execute request; labkit reads it as 'live'."""
    with screenshot_on_failure(notebook.page, tmp_path / "frontend.png"):
        cell = _run_new_cell(notebook.page, "import labkit\nlabkit.frontend(), panel.mode")
        expect(cell.locator(".jp-OutputArea-output")).to_have_text("('live', 'live')")


# A button whose callback, and a thread the callback starts (as the Train button does), write
# what lk.frontend() says into a label.
PROBE_CELL = """import threading, ipywidgets, labkit
probe, seen = ipywidgets.Button(description="Probe"), ipywidgets.Label()
def note(where): seen.value += f"{where}: {labkit.frontend()}; "
probe.on_click(lambda _: [note("callback"), threading.Thread(target=note, args=("thread",)).start()])
ipywidgets.VBox([probe, seen])"""


@pytest.mark.browser
def test_labkit_sees_a_live_front_end_in_widget_callbacks(notebook, tmp_path):
    page = notebook.page
    with screenshot_on_failure(page, tmp_path / "frontend_callback.png"):
        cell = _run_new_cell(page, PROBE_CELL)
        _button(cell, "Probe").click()
        seen = cell.locator(".widget-label")
        expect(seen).to_contain_text("thread:")
        assert seen.inner_text().strip() == "callback: live; thread: live;"


@pytest.mark.browser
def test_train_with_the_slider_and_stop(notebook, tmp_path):
    page, panel = notebook.page, notebook.panel
    slider = panel.locator(".widget-slider").filter(has_text="learning rate")
    handle, readout = slider.locator(".noUi-handle"), slider.locator(".widget-readout")
    train, stop, status = _button(panel, "Train"), _button(panel, "Stop"), panel.locator(STATUS_CSS)
    with screenshot_on_failure(page, tmp_path / "train.png"):
        lr = _move_slider(handle, readout, "ArrowRight", 4)   # 4 steps of 0.05 decades: x1.6
        train.click()
        expect(stop).to_be_enabled()
        expect(train).to_be_disabled()
        expect(status).to_contain_text("Training… step")

        # The curve grows while it trains, and the status shows the slider's learning rate.
        first = panel.evaluate(PROGRESS_JS)
        second = _wait_for_progress(panel, first)
        assert second["points"] > first["points"] and second["drawnPoints"] > 1, (first, second)
        assert second["lr"] == f"{lr:.3g}", f"the trainer uses lr {second['lr']}, the slider says {lr:.3g}"

        # The slider stays live during the run: moving it changes the trainer's learning rate.
        lr = _move_slider(handle, readout, "ArrowLeft", 2)
        expect(status).to_contain_text(f"lr {lr:.3g}")
        _wait_for_progress(panel, panel.evaluate(PROGRESS_JS))
        _save_training_screenshot(panel, tmp_path)

        # Stop: the summary is written after fit has returned, so once the status says
        # "Stopped", training is over. Poll every 50 ms to time it.
        clicked = time.perf_counter()
        stop.click()
        page.wait_for_function("(status) => status.textContent.includes('Stopped at step')",
                               arg=status.element_handle(), polling=50, timeout=UI_TIMEOUT * 1000)
        stopped_after = time.perf_counter() - clicked
        text = status.inner_text()
        print(f"run all cells {notebook.run_all_seconds:.1f} s; Stop to 'Stopped' {stopped_after:.2f} s")
        assert "(Stop button)" in text, text
        assert stopped_after < STOP_WITHIN, f"the status said 'Stopped' {stopped_after:.2f} s after the click"
        expect(train).to_be_enabled()
        expect(stop).to_be_disabled()
        # The chart's last point is the step training stopped at.
        final_step = int(re.search(r"Stopped at step (\d+)", text).group(1))
        page.wait_for_function(f"(panel) => ({PROGRESS_JS})(panel).lastX === {final_step}",
                               arg=panel.element_handle(), timeout=UI_TIMEOUT * 1000)


def _run_new_cell(page, code: str):
    """Type `code` into a new cell at the end of the notebook and run it; return the cell."""
    page.locator(".jp-Notebook .jp-Cell").last.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")           # command mode
    page.keyboard.press("b")                # a new cell below
    page.keyboard.press("Enter")            # edit it
    page.keyboard.insert_text(code)         # as pasted: no auto-indent, no auto-closed brackets
    page.keyboard.press("Shift+Enter")
    return page.locator(".jp-CodeCell").filter(has_text=code.splitlines()[-1])


def _button(within, name: str):
    return within.locator(".jupyter-button", has_text=re.compile(f"^{name}$"))


def _move_slider(handle, readout, key: str, presses: int) -> float:
    """Move a FloatLogSlider with the keyboard; return its new value, checked against its readout."""
    before = handle.get_attribute("aria-valuenow")
    handle.focus()
    for _ in range(presses):
        handle.press(key)
    expect(handle).not_to_have_attribute("aria-valuenow", before)
    value = 10 ** float(handle.get_attribute("aria-valuenow"))   # the handle holds the exponent
    # The readout rounds to 2 significant digits.
    expect(readout).to_have_text(re.compile(r"^[0-9.e+-]+$"))
    shown = float(readout.inner_text())
    assert math.isclose(shown, value, rel_tol=0.05), f"slider readout {shown} for value {value:.4g}"
    return value


def _wait_for_progress(panel, after: dict) -> dict:
    """Wait until both the status line and the chart are past `after`; return the new state."""
    panel.page.wait_for_function(
        f"([panel, after]) => {{ const now = ({PROGRESS_JS})(panel);"
        f" return now.step > after.step && now.lastX > after.lastX; }}",
        arg=[panel.element_handle(), after], timeout=UI_TIMEOUT * 1000)
    return panel.evaluate(PROGRESS_JS)


def _save_training_screenshot(panel, tmp_path: Path) -> None:
    path = tmp_path / "panel_training.png"
    panel.screenshot(path=str(path))
    keep = os.environ.get("LABKIT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


# -- labkit doctor reports the same facts from the command line ----------------------------------------

@pytest.fixture(scope="module")
def doctor():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "labkit.cli", "doctor", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode in (0, 1), f"labkit doctor crashed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def test_doctor_reports_the_front_end_extensions(doctor):
    for name in EXTENSIONS:
        found = doctor["labextensions"].get(name)
        assert found, f"labkit doctor: JupyterLab extension {name} not found: {doctor['problems']}"
        assert found["enabled"] and found["version"], found
    assert not [p for p in doctor["problems"] if "extension" in p], doctor["problems"]


@pytest.mark.browser
def test_doctor_agrees_with_jupyterlab(notebook, doctor):
    loaded = notebook.page.evaluate(
        "() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
        ".federated_extensions.map(e => e.name)")
    reported = {name for name, found in doctor["labextensions"].items() if found and found["enabled"]}
    assert set(EXTENSIONS) <= reported <= set(loaded), (reported, loaded)
