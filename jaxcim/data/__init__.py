"""Data sets shipped with jaxcim (see each file's header; generated ones say so)."""
