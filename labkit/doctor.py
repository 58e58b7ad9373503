"""``labkit doctor``: versions, devices, kernels and JupyterLab extensions, with what to fix.

``labkit doctor --gpu`` runs the GPU check (benchmarks/gpu_check.py) on a CUDA machine.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .runner import error_line

NO_GPU = 3     # benchmarks/gpu_check.py's exit code when no CUDA GPU is found (the same constant there)
PACKAGES = ("torch", "ipywidgets", "plotly", "anywidget", "jupyterlab", "papermill", "nbval",
            "nbconvert", "ipykernel", "torchmetrics")


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _major(version: str | None) -> int:
    match = re.match(r"\d+", version or "")
    return int(match.group()) if match else 0


def lab_extensions(labextensions_path=None) -> dict:
    """Installed prebuilt JupyterLab extensions, found as ``jupyter labextension list`` does.

    Returns ``{name: {"version", "path", "enabled"}}``; the first folder on the path wins.
    """
    from jupyter_core.paths import jupyter_path
    from jupyterlab_server.config import get_federated_extensions, get_page_config

    if labextensions_path is None:
        labextensions_path = jupyter_path("labextensions")
    found = get_federated_extensions(labextensions_path)
    disabled = get_page_config(labextensions_path).get("disabledExtensions", {})
    if isinstance(disabled, list):
        disabled = dict.fromkeys(disabled, True)
    return {name: {"version": data["version"], "path": data["ext_path"],
                   "enabled": not disabled.get(name, False)} for name, data in found.items()}


def collect_environment(labextensions_path=None) -> dict:
    """Everything ``labkit doctor`` reports, plus a list of problems with what to install."""
    import platform

    problems = []
    packages = {name: _version(name) for name in PACKAGES}
    for name, version in packages.items():
        if version is None:
            problems.append(f"{name} is not installed: pip install {name}")

    torch_info = None
    if packages["torch"] is not None:
        try:
            from labkit.device import describe

            torch_info = describe()
        except Exception as exc:  # a broken torch install is exactly what doctor should report
            problems.append(f"torch is installed but fails to load ({error_line(exc)}); reinstall it")

    kernels = {}
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        kernels = KernelSpecManager().find_kernel_specs()
    except Exception as exc:
        problems.append(f"cannot list Jupyter kernels ({error_line(exc)}): pip install ipykernel")
    if "python3" not in kernels:
        problems.append("no 'python3' Jupyter kernel, which labkit run uses: "
                        "pip install ipykernel && python -m ipykernel install --user")

    # What the notebooks need in JupyterLab: widgets, and plotly's renderer (plotly >= 5 ships
    # jupyterlab-plotly; plotly >= 6 draws FigureWidget through anywidget).
    needed = {"@jupyter-widgets/jupyterlab-manager": "pip install 'ipywidgets>=8'",
              "jupyterlab-plotly": "pip install 'plotly>=5'"}
    if _major(packages["plotly"]) >= 6:
        needed["anywidget"] = "pip install anywidget"
    extensions = {}
    try:
        extensions = lab_extensions(labextensions_path)
    except Exception as exc:
        problems.append(f"cannot list JupyterLab extensions ({error_line(exc)}): "
                        f"pip install 'jupyterlab>=4'")
    for name, fix in needed.items():
        ext = extensions.get(name)
        if ext is None:
            problems.append(f"JupyterLab extension {name} is not installed: {fix}")
        elif not ext["enabled"]:
            problems.append(f"JupyterLab extension {name} is disabled: jupyter labextension enable {name}")
    plotly_ext = extensions.get("jupyterlab-plotly")
    if plotly_ext and packages["plotly"] and plotly_ext["version"] != packages["plotly"]:
        problems.append(f"jupyterlab-plotly {plotly_ext['version']} (in {plotly_ext['path']}) does not "
                        f"match plotly {packages['plotly']}; remove the stale copy or "
                        f"pip install --force-reinstall plotly=={packages['plotly']}")

    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "executable": sys.executable, "torch": torch_info, "packages": packages,
            "kernels": kernels, "labextensions": {n: extensions.get(n) for n in needed},
            "problems": problems, "ok": not problems}


def gpu_check_script() -> Path | None:
    """benchmarks/gpu_check.py of this checkout (it is not part of an installed wheel)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    return path if path.is_file() else None


def cmd_gpu(args) -> int:
    """``labkit doctor --gpu``: the GPU check, or a clear note that there is no CUDA GPU (exit 0)."""
    import subprocess

    script = gpu_check_script()
    if script is None:
        print("labkit doctor --gpu: benchmarks/gpu_check.py is not here; run it from a checkout of labkit",
              file=sys.stderr)
        return 2
    command = [sys.executable, str(script)]
    code = subprocess.call(command)
    # the script exits NO_GPU when there is nothing to check: for doctor that is an answer, not a fault
    return 0 if code == NO_GPU else code


def cmd_doctor(args) -> int:
    if getattr(args, "gpu", False):
        return cmd_gpu(args)
    from .cli import format_table

    env = collect_environment()
    if args.json:
        print(json.dumps(env, indent=2))
        return 0 if env["ok"] else 1
    rows = [["python", env["python"], env["executable"]], ["platform", env["platform"], ""]]
    info = env["torch"]
    if info:
        accel = f"CUDA: {'yes' if info['cuda'] else 'no'}, MPS: {'yes' if info['mps'] else 'no'}"
        rows.append(["device", info["device"], accel])
        if "gpu" in info:
            rows.append(["gpu", info["gpu"], f"{info['gpu_memory_gb']} GB x {info['gpu_count']}"])
    rows += [[name, version or "MISSING", ""] for name, version in env["packages"].items()]
    rows += [["kernel " + name, "", path] for name, path in env["kernels"].items()]
    for name, ext in env["labextensions"].items():
        if ext is None:
            rows.append(["labextension " + name, "MISSING", ""])
        else:
            where = ("" if ext["enabled"] else "DISABLED ") + ext["path"]
            rows.append(["labextension " + name, ext["version"], where])
    print(format_table(["item", "version", "where / notes"], rows))
    if env["ok"]:
        print("\nAll good.")
        return 0
    print("\nTo fix:")
    for problem in env["problems"]:
        print(f"  - {problem}")
    return 1
