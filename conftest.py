"""pytest configuration shared by the unit tests and the notebooks (nbval).

Notebooks read LABKIT_QUICK in their parameters cell: set here, it reaches every kernel that
pytest starts (papermill and nbval), so `pytest` runs the course in quick mode.
"""
import os

os.environ.setdefault("LABKIT_QUICK", "1")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
