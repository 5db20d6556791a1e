"""The PyTorch notebook needs the optional ``torch`` extra: skip it where PyTorch is not installed."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["torch_import.ipynb"]
