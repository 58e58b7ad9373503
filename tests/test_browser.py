"""JupyterLab in a real browser: headless Chromium, driven by Playwright.

One module fixture starts `jupyter lab` on 127.0.0.1 (a free port, a random token) serving
temporary copies of the notebooks, so autosave never touches the repository: 00_setup and
01_linear_regression whole, and the cells of 03 (LayerStats, the Playground) and 09 (the step
panel) that those features need. The tests run them and use them the way a learner does: move the
learning-rate slider or type a rate, press Train, watch the curves of every run, press Stop,
reload the page, watch the playground's boundary and the step panel's sample change.

The browser tests skip, saying why, when chromium or playwright is missing. Playwright's own
browser download is not needed: the tests launch the system's chromium.
Set LABKIT_SCREENSHOTS=<folder> to keep screenshots of what a learner sees (panel, playground,
LayerStats, step panel, surface explorer).
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
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import expect, sync_playwright
except ImportError:                     # the browser tests skip, saying so
    expect = sync_playwright = None
    PlaywrightTimeoutError = TimeoutError

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
RUN_ALL_TIMEOUT = 600
UI_TIMEOUT = 30             # a widget reacting to a click or a key, a status line changing
# From pressing Stop to the status saying so (training is over by then). The panel stops at the
# next batch boundary: a few ms alone; a loaded 2-core machine has been seen to take 2 s.
STOP_WITHIN = 3.0
# Cells of the course the feature tests run, by cell id (the notebooks' setup cells, then the feature's).
EXCERPTS = {
    "lab_03.ipynb": ("03_mlp", ["c01", "c02", "c03", "c10", "c24b", "c24e"]),
    "lab_09.ipynb": ("09_transformer", ["688a81a0", "cd991ab9", "84989565", "d6cba8c3", "ae8ea47f", "3a90e089", "7635ed8b", "c28b"]),
}


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
        # a workspace of its own per notebook: a page shows that notebook alone, so two pages never
        # hold the same file open (and never ask "File Changed: overwrite?")
        workspace = notebook.replace(".ipynb", "").replace("_", "-")
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _excerpt(source: Path, ids: list, target: Path) -> None:
    """A notebook made of some cells of `source`, by cell id, in order."""
    nb = json.loads(source.read_text())
    cells = {c.get("id"): c for c in nb["cells"]}
    missing = [i for i in ids if i not in cells]
    assert not missing, f"{source.name} has no cells {missing}"
    nb["cells"] = [cells[i] for i in ids]
    target.write_text(json.dumps(nb, indent=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_settings(folder: Path) -> None:
    """The settings labkit installs (share/jupyter/lab/settings/overrides.json): start the notebook's
    kernel without asking (the 'Select Kernel' dialog otherwise appears, depending on timing, and
    blocks Run All); no 'get Jupyter news?' toast over the notebook and no update check."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "labkit" / "jupyter" / "overrides.json", folder / "overrides.json")


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
    shutil.copy(NOTEBOOK.parent / "01_linear_regression.ipynb", root / "01_linear_regression.ipynb")
    shutil.copy(NOTEBOOK.parent / "zh" / NOTEBOOK.name, root / f"zh_{NOTEBOOK.name}")    # the Chinese edition
    for name, (source, ids) in EXCERPTS.items():
        _excerpt(NOTEBOOK.parent / f"{source}.ipynb", ids, root / name)
    _lab_settings(base / "app_settings")
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
               f"--LabApp.app_settings_dir={base / 'app_settings'}",
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
    // JupyterLab may leave far-away cells out of the page: every cell shown must be numbered, and
    // either all of them are shown or the kernel is idle with the last cell of the notebook shown
    const numbered = prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
    const idle = [...document.querySelectorAll('.jp-StatusBar-TextItem, .jp-StatusBar-Item')]
        .some(e => /\\| Idle$/.test(e.textContent.trim()));
    const cells = document.querySelectorAll('.jp-Notebook .jp-Cell');
    const lastShown = cells.length && cells[cells.length - 1].classList.contains('jp-CodeCell')
        ? /^\\[\\d+\\]:$/.test(cells[cells.length - 1].querySelector('.jp-InputArea-prompt')?.textContent.trim() || '')
        : true;
    return numbered && (prompts.length === expected || (idle && lastShown && prompts.length >= 3)) ? {done: true} : false;
}"""

# What the panel shows: its status line, the step and lr in it, and the live chart's data.
STATUS_CSS = ".widget-hbox:has(> .jupyter-button) + .widget-html .widget-html-content"
PROGRESS_JS = """(panel) => {
    const text = panel.querySelector('%s').textContent;
    const number = (re) => { const m = text.match(re); return m ? parseFloat(m[1]) : null; };
    const chart = panel.querySelector('.js-plotly-plot');
    const runs = chart && chart.data ? chart.data.filter(t => t.showlegend) : [];
    const xs = runs.length ? runs[runs.length - 1].x || [] : [];
    const line = chart && chart.querySelector('.scatterlayer .trace path.js-line');
    return {text, step: number(/step (\\d+)/), lr: (text.match(/lr ([0-9.e+-]+)/) || [])[1] || null,
            lastX: xs.length ? xs[xs.length - 1] : -1, points: xs.length,
            drawnPoints: line ? (line.getAttribute('d') || '').split(/[ML]/).length - 1 : 0,
            legend: runs.map(t => t.name)};
}""" % STATUS_CSS


LR_BOX = ".widget-text input"          # the exact learning rate, beside the slider


def _code_cells(path: Path) -> int:
    return sum(cell["cell_type"] == "code" for cell in json.loads(path.read_text())["cells"])


def _open_and_run_all(lab, browser, name: str, shots: Path, panel_button: str | None = "Train") -> "Notebook":
    """Open a notebook of the lab's root in a new page, Run All, wait until every cell ran."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT * 1000)
    page_errors: list = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    with screenshot_on_failure(page, shots / f"{name}_run_all_failed.png"):
        page.goto(lab.page_url(name), timeout=START_TIMEOUT * 1000)
        # Run All before the kernel is up runs nothing: wait for the status bar's "| Idle".
        expect(page.get_by_title(f"Change kernel for {name}")).to_have_text(
            re.compile(r"\| Idle$"), timeout=START_TIMEOUT * 1000)
        start = time.perf_counter()
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        result = page.wait_for_function(CELLS_DONE_JS, arg=_code_cells(lab.root / name),
                                        timeout=RUN_ALL_TIMEOUT * 1000).json_value()
        assert "error" not in result, f"a cell of {name} failed in JupyterLab:\n{result['error']}"
        run_all = time.perf_counter() - start
        panel = None
        if panel_button:
            # CSS, not roles: JupyterLab lays out off-screen cells lazily (content-visibility: auto),
            # which keeps their widgets out of the accessibility tree until they are scrolled to.
            panel = page.locator(".jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output").filter(
                has=_button(page, panel_button)).first
            panel.scroll_into_view_if_needed()
            panel.wait_for()
    return Notebook(page, panel, run_all, page_errors)


@pytest.fixture(scope="module")
def notebook(lab, browser, tmp_path_factory):
    """The course's first notebook, opened in JupyterLab with all its cells run."""
    nb = _open_and_run_all(lab, browser, NOTEBOOK.name, tmp_path_factory.mktemp("screenshots"))
    yield nb
    nb.page.close()


# -- the tests ----------------------------------------------------------------------------------------

@pytest.mark.browser
def test_control_panel_and_chart_render(notebook, tmp_path):
    page, panel = notebook.page, notebook.panel
    with screenshot_on_failure(page, tmp_path / "render.png"):
        slider = panel.locator(".widget-slider").filter(has_text="learning rate")
        expect(slider.locator(".noUi-handle")).to_be_visible()
        expect(panel.locator(LR_BOX)).to_have_value(re.compile(r"^\d"))
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
    handle, readout = slider.locator(".noUi-handle"), panel.locator(LR_BOX)
    train, stop, status = _button(panel, "Train"), _button(panel, "Stop"), panel.locator(STATUS_CSS)
    with screenshot_on_failure(page, tmp_path / "train.png"):
        _run_new_cell(page, "panel.set(epochs=200, batch_size=1);")    # a long run: Stop ends it
        lr = _move_slider(handle, readout, "ArrowRight", 4)   # 4 steps of 0.05 decades: x1.6
        train.click()
        expect(stop).to_be_enabled()
        expect(train).to_be_disabled()
        expect(status).to_contain_text("Training… step")

        # The curve grows while it trains, and the status shows the slider's learning rate.
        first = panel.evaluate(PROGRESS_JS)
        second = _wait_for_progress(panel, first)
        assert second["lastX"] > first["lastX"] and second["drawnPoints"] > 1, (first, second)
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


@pytest.mark.browser
def test_two_runs_overlaid_with_their_labels_after_changing_the_lr(notebook, tmp_path):
    page, panel = notebook.page, notebook.panel
    status, box = panel.locator(STATUS_CSS), panel.locator(LR_BOX)
    with screenshot_on_failure(page, tmp_path / "two_runs.png"):
        before = panel.evaluate(PROGRESS_JS)["legend"]
        # a typed learning rate is used exactly as typed (a log slider would snap 0.05 to 0.0501)
        box.fill("0.05")
        box.press("Enter")
        expect(box).to_have_value("0.05")
        _run_new_cell(page, "panel.set(epochs=10, batch_size=8);")
        _button(panel, "Train").click()
        expect(status).to_contain_text(re.compile(r"Done: step|Stopped at step"), timeout=RUN_ALL_TIMEOUT * 1000)
        page.wait_for_function(f"(panel) => ({PROGRESS_JS})(panel).legend.length === {len(before) + 1}",
                               arg=panel.element_handle(), timeout=UI_TIMEOUT * 1000)
        legend = panel.evaluate(PROGRESS_JS)["legend"]
        assert any("lr 0.05" in name for name in legend[-1:]), legend
        # every run is labelled by what differs, and drawn in the legend the learner clicks
        expect(panel.locator(".js-plotly-plot .legendtext").last).to_contain_text("lr 0.05")
        expect(panel.locator(".js-plotly-plot .legendtext")).to_have_count(len(before) + 1)
        expect(panel.locator("table")).to_contain_text("best val loss")
        _keep(panel, tmp_path, "panel_two_runs.png")
        cell = _run_new_cell(page, "run = panel.runs[-1]\nprint(run.settings['lr'], panel.trainer.history.steps[-1]['lr'], "
                                   "round(panel._feed.draw_seconds / run.seconds, 4))")
        expect(cell.locator(".jp-OutputArea-output")).to_contain_text("0.05 0.05")
        share = float(cell.locator(".jp-OutputArea-output").inner_text().split()[-1])
        print(f"live redraws took {share:.1%} of the run's time")
        assert share < 0.10, f"redrawing took {share:.1%} of the training time"


@pytest.mark.browser
def test_the_chart_survives_a_page_reload(notebook, tmp_path):
    page, panel = notebook.page, notebook.panel
    with screenshot_on_failure(page, tmp_path / "reload.png"):
        legend = panel.evaluate(PROGRESS_JS)["legend"]
        assert len(legend) >= 2, legend
        # saved first (as JupyterLab's autosave does every two minutes): the page comes back from the file
        page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        expect(page.locator(".jp-mod-current.jp-mod-dirty")).to_have_count(0)
        page.reload()
        expect(page.get_by_title(f"Change kernel for {NOTEBOOK.name}")).to_have_text(
            re.compile(r"\| Idle$"), timeout=START_TIMEOUT * 1000)
        panel.scroll_into_view_if_needed()
        page.wait_for_function(f"(panel) => ({PROGRESS_JS})(panel).legend.length === {len(legend)}",
                               arg=panel.element_handle(), timeout=UI_TIMEOUT * 1000)
        assert panel.evaluate(PROGRESS_JS)["legend"] == legend
        broken = page.evaluate("""(words) => [...document.querySelectorAll('.jp-OutputArea-output')]
            .filter(o => words.some(w => o.textContent.includes(w)) && !o.querySelector('.jp-OutputArea-output'))
            .map(o => o.textContent.slice(0, 300))""", list(BROKEN_OUTPUT_TEXT))
        assert not broken, f"outputs broken after the reload: {broken}"
        # training again after the reload adds one more run, with its legend entry
        _button(panel, "Train").click()
        status = panel.locator(STATUS_CSS)
        _click_if_still_running(_button(panel, "Stop"))
        expect(status).to_contain_text(re.compile(r"Stopped at step|Done: step"), timeout=RUN_ALL_TIMEOUT * 1000)
        page.wait_for_function(f"(panel) => ({PROGRESS_JS})(panel).legend.length === {len(legend) + 1}",
                               arg=panel.element_handle(), timeout=UI_TIMEOUT * 1000)
        expect(panel.locator(".js-plotly-plot .legendtext")).to_have_count(len(legend) + 1)
        _keep(panel, tmp_path, "panel_after_reload.png")
        assert not [e for e in notebook.page_errors if "gd.data" in e or "initialize model" in e], notebook.page_errors


@pytest.mark.browser
def test_the_exact_lr_after_run_all_in_01(lab, browser, tmp_path):
    nb = _open_and_run_all(lab, browser, "01_linear_regression.ipynb", tmp_path)
    page, panel = nb.page, nb.panel
    try:
        with screenshot_on_failure(page, tmp_path / "01.png"):
            expect(panel.locator(LR_BOX)).to_have_value("0.1")       # the text promises lr 0.1
            _button(panel, "Train").click()
            status = panel.locator(STATUS_CSS)
            expect(status).to_contain_text(re.compile(r"Done: step|Stopped at step"), timeout=RUN_ALL_TIMEOUT * 1000)
            assert "lr 0.1 " in status.inner_text(), status.inner_text()
            cell = _run_new_cell(page, "panel.runs[-1].settings['lr'], panel.trainer.history.steps[-1]['lr']")
            expect(cell.locator(".jp-OutputArea-output")).to_have_text("(0.1, 0.1)")
            _keep(panel, tmp_path, "panel_01.png")
    finally:
        page.close()


@pytest.mark.browser
def test_a_chinese_notebook_shows_its_panel_in_chinese(lab, browser, tmp_path):
    """notebooks/zh/00_setup.ipynb sets lk.set_language("zh"): buttons, status line and chart in Chinese."""
    nb = _open_and_run_all(lab, browser, f"zh_{NOTEBOOK.name}", tmp_path, panel_button="训练")
    page, panel = nb.page, nb.panel
    try:
        with screenshot_on_failure(page, tmp_path / "zh.png"):
            expect(_button(panel, "训练")).to_be_enabled()
            expect(_button(panel, "停止")).to_be_disabled()
            expect(_button(panel, "清除运行")).to_be_visible()
            expect(panel.locator(STATUS_CSS)).to_contain_text("完成：第")         # panel.train() ran from code
            expect(panel.locator(".js-plotly-plot").first).to_contain_text("损失")
            assert "学习率" in panel.inner_text()
            _keep(panel, tmp_path, "panel_zh.png")
    finally:
        page.close()


# Frames drawn by a live plotly output: a frame is a new figure object in the page (Plotly.react
# or a new renderer), counted on every animation frame until stopped.
COUNT_FRAMES_JS = """(root) => { window.__frames = 0; let last = null; window.__counting = true;
    const tick = () => { const gd = root.querySelector('.js-plotly-plot');
        const now = gd && gd.data ? gd.data : null;
        if (now && now !== last) { window.__frames += 1; last = now; }
        if (window.__counting) requestAnimationFrame(tick); };
    requestAnimationFrame(tick); }"""
BOUNDARY_JS = """(root) => { const gd = root.querySelector('.js-plotly-plot');
    const t = gd && gd.data ? gd.data.find(t => t.name === 'P(blue)') : null;
    return t ? {z: t.z.flat(), heatmaps: gd.data.filter(t => t.type === 'heatmap').length,
                title: gd.layout.title.text} : null; }"""


@pytest.fixture(scope="module")
def lab_03(lab, browser, tmp_path_factory):
    nb = _open_and_run_all(lab, browser, "lab_03.ipynb", tmp_path_factory.mktemp("screenshots"))
    yield nb
    nb.page.close()


@pytest.mark.browser
def test_layerstats_draws_its_panels(lab_03, tmp_path):
    page = lab_03.page
    with screenshot_on_failure(page, tmp_path / "layerstats.png"):
        chart = page.locator(".js-plotly-plot").filter(has_text="gradient norm").first
        chart.scroll_into_view_if_needed()
        expect(chart.locator(".main-svg").first).to_be_visible()
        info = chart.evaluate("(gd) => ({names: gd.data.map(t => t.name), points: gd.data.map(t => (t.x || []).length)})")
        assert {"loss", "Linear 0", "Linear 2", "Linear 4"} <= set(info["names"]), info
        drawn = {n for n, k in zip(info["names"], info["points"]) if k > 1}
        assert {"loss", "Linear 0", "Linear 2", "Linear 4"} <= drawn, info
        for text in ("update / weight", "dead ReLUs"):
            expect(chart).to_contain_text(text)
        _keep(chart, tmp_path, "layerstats.png")


@pytest.mark.browser
def test_playground_renders_and_its_boundary_changes_while_it_trains(lab_03, tmp_path):
    page, pg = lab_03.page, lab_03.panel
    with screenshot_on_failure(page, tmp_path / "playground.png"):
        first = pg.evaluate(BOUNDARY_JS)
        assert first and first["heatmaps"] == 4 + 1, first         # 4 neurons' maps and the boundary
        _keep(pg, tmp_path, "playground.png")
        pg.evaluate(COUNT_FRAMES_JS)
        started = time.perf_counter()
        _button(pg, "Train").click()
        expect(_button(pg, "Stop")).to_be_enabled()
        # the boundary redraws while it trains: its probabilities change, the epoch in the title grows
        page.wait_for_function(f"([root, z]) => {{ const now = ({BOUNDARY_JS})(root);"
                               f" return now && now.z.some((v, i) => Math.abs(v - z[i]) > 0.02); }}",
                               arg=[pg.element_handle(), first["z"]], timeout=UI_TIMEOUT * 1000)
        page.wait_for_timeout(3000)
        frames, seconds = page.evaluate("() => window.__frames"), time.perf_counter() - started
        _keep(pg, tmp_path, "playground_training.png")
        _click_if_still_running(_button(pg, "Stop"))
        expect(pg).to_contain_text(re.compile(r"(Stopped|Done) at epoch"), timeout=RUN_ALL_TIMEOUT * 1000)
        page.evaluate("() => { window.__counting = false; }")
        fps = frames / seconds
        print(f"playground: {frames} frames drawn in {seconds:.1f} s: {fps:.1f} frames/s")
        assert frames >= 3, f"the playground drew {frames} frames in {seconds:.1f} s of training"


@pytest.mark.browser
def test_step_panel_in_09_shows_a_growing_sample(lab, browser, tmp_path):
    nb = _open_and_run_all(lab, browser, "lab_09.ipynb", tmp_path)
    page, panel = nb.page, nb.panel
    try:
        with screenshot_on_failure(page, tmp_path / "step_panel.png"):
            expect(panel.locator(".widget-slider").filter(has_text="steps")).to_have_count(1)
            _button(panel, "Train").click()
            sample = panel.locator("pre")
            seen = []
            for _ in range(2):             # two evaluations: two samples, each at a later step
                page.wait_for_function(
                    "([panel, after]) => { const m = panel.textContent.match(/sample at step (\\d+)/);"
                    " return m && parseInt(m[1]) > after; }",
                    arg=[panel.element_handle(), seen[-1][0] if seen else 0], timeout=RUN_ALL_TIMEOUT * 1000)
                step = int(re.search(r"sample at step (\d+)", panel.inner_text()).group(1))
                seen.append((step, sample.inner_text()))
            assert seen[1][0] > seen[0][0] and all(t.startswith('The "for" statement') for _, t in seen), seen
            _keep(panel, tmp_path, "step_panel.png")
            _click_if_still_running(_button(panel, "Stop"))
            expect(panel.locator(STATUS_CSS)).to_contain_text(re.compile(r"Stopped at step|Done: step"))
    finally:
        page.close()


def _keep(locator, tmp_path: Path, name: str) -> None:
    """A screenshot of what the learner sees, kept in $LABKIT_SCREENSHOTS when set."""
    path = tmp_path / name
    locator.screenshot(path=str(path))
    keep = os.environ.get("LABKIT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)


def _run_new_cell(page, code: str):
    """Type `code` into a new cell at the end of the notebook and run it; return the cell."""
    page.locator(".jp-Notebook .jp-Cell").last.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")           # command mode
    page.keyboard.press("b")                # a new cell below
    page.keyboard.press("Enter")            # edit it
    page.keyboard.insert_text(code)         # as pasted: no auto-indent, no auto-closed brackets
    page.keyboard.press("Shift+Enter")
    return page.locator(".jp-CodeCell").filter(has_text=code.splitlines()[-1])


def _click_if_still_running(stop) -> None:
    """Press Stop unless the run already ended (it may end between a check and the click)."""
    try:
        stop.click(timeout=2000)
    except PlaywrightTimeoutError:
        pass


def _button(within, name: str):
    return within.locator(".jupyter-button", has_text=re.compile(f"^{name}$"))


def _move_slider(handle, box, key: str, presses: int) -> float:
    """Move the learning-rate slider with the keyboard; return the rate the panel will use: the
    slider's value to 3 significant digits, shown exactly in the box beside it."""
    before = handle.get_attribute("aria-valuenow")
    handle.focus()
    for _ in range(presses):
        handle.press(key)
    expect(handle).not_to_have_attribute("aria-valuenow", before)
    value = float(f"{10 ** float(handle.get_attribute('aria-valuenow')):.3g}")   # the handle holds the exponent
    expect(box).to_have_value(re.compile(r"^[0-9.e+-]+$"))
    box.page.wait_for_function("([box, v]) => Math.abs(parseFloat(box.value) - v) <= 1e-12 * v",
                               arg=[box.element_handle(), value], timeout=UI_TIMEOUT * 1000)
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
