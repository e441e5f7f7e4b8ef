"""Inputs whose values reach the handler as sent, so the library checks them and answers in words.

Gradio's own Number, Slider and Radio check values before the handler runs: NaN then fails with a bare "Error" and no
message (it cannot be rounded), and each out-of-range value prints a traceback to the server log. These are Gradio's
own widgets (the browser shows and bounds them as usual) whose values pass through unchanged; every handler checks
its numbers with pipeline.whole_number / finite_number, as the Python API does. (A subclass would do the same, but
Gradio writes a .pyi file beside every module that subclasses a component.)
"""
from __future__ import annotations

import gradio as gr


def _as_sent(payload):
    return payload


def number(*args, **kwargs) -> gr.Number:
    box = gr.Number(*args, **kwargs)
    box.preprocess = _as_sent
    return box


def slider(*args, **kwargs) -> gr.Slider:
    bar = gr.Slider(*args, **kwargs)
    bar.preprocess = _as_sent
    return bar


def radio(*args, **kwargs) -> gr.Radio:
    choice = gr.Radio(*args, **kwargs)
    choice.preprocess = _as_sent  # an unknown choice reaches the handler, which names the ones it accepts
    return choice


def _upload_path(payload):
    if payload is None:
        return None
    return getattr(payload, "path", None) or (payload.get("path") if isinstance(payload, dict) else None)


def picture(*args, **kwargs) -> gr.Image:
    """An image upload whose file reaches the handler as uploaded (its path in Gradio's upload cache): Gradio's own
    preprocessing decodes it first and fails with a bare error on a file that is not a picture or is too large;
    `images.picture_tensor` reads it and names what is wrong."""
    box = gr.Image(*args, type="filepath", **kwargs)
    box.preprocess = _upload_path
    return box
