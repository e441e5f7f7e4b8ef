"""The Gradio app: a thin layer over the library (nothing here that the Python API and CLI cannot do)."""
from .app import build_app, launch

__all__ = ["build_app", "launch"]
