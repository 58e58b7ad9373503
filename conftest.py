"""pytest configuration shared by the unit tests and the notebooks (nbval).

Notebooks read LABKIT_QUICK in their parameters cell: set here, it reaches every kernel that
pytest starts (papermill and nbval), so `pytest` runs the course in quick mode.
"""
import os

os.environ.setdefault("LABKIT_QUICK", "1")
# One intra-op thread per process: the course's models are small, and on a 2-core machine that also
# runs the test process and a kernel, more threads fight each other (several times slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Threads that wait for work sleep instead of spinning: spinning threads steal the cores that the
# other processes of a run need (measured: a GPT step 5x slower with spinning on a busy machine).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
