"""What the app holds between requests: the loaded pipeline and the one training job."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

from ..device import describe
from ..job import TrainingJob, active_job
from ..weights import check_name, list_models, load_pipeline, weights_dir


def outputs_dir() -> Path:
    """The app's own folder for uploads and exports ($T2IGAN_OUTPUTS, else outputs/ beside weights/)."""
    root = Path(os.environ.get("T2IGAN_OUTPUTS") or weights_dir().parent / "outputs").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


class Studio:
    """One per app: loads pipelines on demand and owns the training job."""

    def __init__(self, device: str | None = None, threads: int | None = None):
        self.device = device
        self.threads = threads
        self.name: str | None = None
        self.pipe = None
        self.lock = threading.Lock()
        self.job: TrainingJob | None = None

    def pipeline(self, name: str | None):
        """The pipeline for `name` (a model under weights/), loading it if it is not the current one."""
        name = check_name(name) if name else (list_models() or [None])[0]  # names only: never a path from the UI
        with self.lock:
            if self.pipe is None or name != self.name:
                self.pipe = load_pipeline(name, device=self.device)
                self.name = name
            return self.pipe

    def generation_threads(self) -> int:
        """CPU threads for one generation request: 1 unless set (--threads / $T2IGAN_THREADS).

        A GAN forward pass for a handful of images is too small to gain from a second thread, and when anything
        else keeps the cores busy (a training job here or in another process) two OpenMP threads wait on each
        other: measured 11 ms/image with 1 thread vs 700 ms/image with 2 while a training run used both cores.
        """
        if self.threads:
            return self.threads
        return int(os.environ.get("T2IGAN_THREADS") or 1) if active_job() is None else 1

    def describe(self) -> str:
        if self.pipe is None:
            return "no model loaded"
        return f"model **{self.name}** · {describe(self.pipe.device)} · text encoder `{self.pipe.config.text_encoder_id}`"
