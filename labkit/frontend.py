"""Where is this code running? "live" (JupyterLab or another live notebook front end), "headless"
(papermill, nbconvert, nbval: a kernel with nobody watching) or "script" (plain Python).

LivePlot, ProgressBar and ControlPanel use this to update in place when someone is watching,
and to leave one small static result in a saved notebook when nobody is.
Set LABKIT_FRONTEND=live|headless|script to override the guess.
"""
from __future__ import annotations

import os

MODES = ("live", "headless", "script")


def frontend() -> str:
    forced = os.environ.get("LABKIT_FRONTEND", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"LABKIT_FRONTEND={forced!r} is not one of {MODES}")
        return forced
    try:
        from IPython import get_ipython
    except ImportError:
        return "script"
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return "script"                  # plain python, or a terminal IPython
    try:
        parent = kernel.get_parent("shell")
    except Exception:
        parent = getattr(kernel, "_parent_header", {}) or {}
    # JupyterLab, Notebook 7 and VS Code send the cell's id in the request metadata;
    # papermill, nbconvert and nbval (through nbclient/jupyter_client) send none.
    metadata = (parent or {}).get("metadata") or {}
    return "live" if ("cellId" in metadata or "deletedCells" in metadata) else "headless"
