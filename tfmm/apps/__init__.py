"""Thin command-line apps over the shared parts: `python -m tfmm.apps.<task>`."""
