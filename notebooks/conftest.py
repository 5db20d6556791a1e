"""Notebook runs under pytest (nbmake): the PyTorch notebook needs the optional ``torch`` extra (skipped where PyTorch
is not installed), and notebooks that read ``JAXCIM_NOTEBOOK_CHIPS`` evaluate 16 chips instead of their default
1000 (the kernels inherit this process's environment)."""

import importlib.util
import os

os.environ.setdefault("JAXCIM_NOTEBOOK_CHIPS", "16")

collect_ignore = [] if importlib.util.find_spec("torch") else ["torch_import.ipynb"]
