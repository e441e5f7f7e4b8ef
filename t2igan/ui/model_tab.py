"""Model tab: the selected model's card and sample sheet, and export as a zip of its pipeline folder."""
from __future__ import annotations

import copy
import json
import re
import shutil
import time

import gradio as gr
import torch

from ..card import FRONT_MATTER
from ..export import ExportError, export_onnx
from ..sheet import prompt_sheet
from ..weights import NoModelError, resolve_model
from .messages import refusal
from .state import Studio, private_file

MAX_CARD_CHARS = 64_000  # the shipped card is about 9 KB; a huge README from elsewhere is cut
# ![alt](target) and [text](target) with a relative target: the app serves nothing from model folders or the
# repository
_LOCAL_IMAGE = re.compile(r"!\[([^\]]*)\]\((?!https?://|data:)[^)]*\)")
_LOCAL_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\((?!https?://|mailto:|#)[^)]*\)")  # [text](../other/README.md)


def card(model: str | None) -> str:
    """The model card (README.md in the model folder), or what the folder says about itself."""
    try:
        path = resolve_model(model, allow_paths=False)
    except (NoModelError, ValueError) as e:
        return refusal("card", e)
    readme = path / "README.md"
    if readme.is_file():
        text = FRONT_MATTER.sub("", readme.read_text(encoding="utf-8", errors="replace"), count=1)[:MAX_CARD_CHARS]
        text = _LOCAL_IMAGE.sub(lambda m: f"*(image “{m.group(1)}” — see the model folder's README.md)*", text)
        return _LOCAL_LINK.sub(r"\1", text)  # the link's words, without a target the app does not serve
    gen = json.loads((path / "generator" / "config.json").read_text())
    return (f"### {path.name}\n\nNo model card yet. Generator: {gen.get('resolution')} px, "
            f"widths {gen.get('channels')}, z {gen.get('z_dim')}.")


def sheet(studio: Studio, model: str | None):
    """The labelled prompt × seed sheet (t2igan sheet), rendered now with the selected model."""
    try:
        pipe = studio.pipeline(model)
        torch.set_num_threads(studio.generation_threads())
        return prompt_sheet(pipe), ""
    except (NoModelError, ValueError, OSError) as e:
        return None, refusal("sample sheet", e)


def export_zip(model: str | None):
    """The pipeline folder as a zip, for this request's visitor only."""
    try:
        path = resolve_model(model, allow_paths=False)
        out = private_file(f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        archive = shutil.make_archive(str(out), "zip", root_dir=path.parent, base_dir=path.name)
        return archive, f"exported {path.name}"
    except (NoModelError, ValueError, OSError) as e:
        return None, refusal("export zip", e)


def export_onnx_file(studio: Studio, model: str | None):
    """The ONNX generator, checked against torch, for this request's visitor only."""
    try:
        name = studio.model_name(model)
        pipe = studio.pipeline(name)
        out = private_file(f"{name}-generator-{time.strftime('%Y%m%d-%H%M%S')}.onnx")
        result = export_onnx(copy.deepcopy(pipe), out)
        return str(out), f"ONNX generator: {result['bytes'] / 2**20:.1f} MB, max |onnxruntime − torch| = {result['max_abs_diff']:.1e}"
    except (ExportError, NoModelError, ValueError, OSError) as e:
        return None, refusal("export onnx", e)


def build(studio: Studio, model_dropdown: gr.Dropdown) -> None:
    with gr.Row():
        with gr.Column(scale=3):
            card_md = gr.Markdown(card(model_dropdown.value), elem_id="model-card")
        with gr.Column(scale=2):
            sheet_btn = gr.Button("Render sample sheet", elem_id="sheet-btn")
            msg = gr.Markdown(elem_id="sheet-msg")
            zip_btn = gr.Button("Export as .zip", elem_id="export-zip")
            zip_file = gr.File(label="Pipeline folder (zip)")
            zip_msg = gr.Markdown(elem_id="zip-msg")
            onnx_btn = gr.Button("Export generator as ONNX", elem_id="export-onnx")
            onnx_file = gr.File(label="ONNX generator (inputs: noise, sentence embedding)")
            onnx_msg = gr.Markdown(elem_id="onnx-msg")  # each export keeps its own answer
    # the sheet at the page's width: its labels are readable there
    sheet_img = gr.Image(label="Prompt sheet (4 seeds per prompt)", elem_classes=["pixelated"], format="png",
                         elem_id="sheet-img")
    model_dropdown.change(card, model_dropdown, card_md, api_visibility="private")

    def sample_sheet(model: str | None):
        return studio.compute(sheet, studio, model)

    def onnx(model: str | None):
        return studio.compute(export_onnx_file, studio, model)

    sheet_btn.click(sample_sheet, model_dropdown, [sheet_img, msg], api_name="sample_sheet", concurrency_id="gen")
    zip_btn.click(export_zip, model_dropdown, [zip_file, zip_msg], api_name="export_zip")
    onnx_btn.click(onnx, model_dropdown, [onnx_file, onnx_msg], api_name="export_onnx")
