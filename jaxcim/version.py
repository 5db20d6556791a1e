"""The jaxcim version (kept apart from ``jaxcim/__init__.py`` so that any module can read it without an import
cycle through the package)."""

__version__ = "0.1.0"
