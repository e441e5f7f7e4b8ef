"""What the app holds between requests: the loaded pipelines, the one training job and whose it is."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..device import cpu_cores, describe, threads_from_env
from ..invert import Projector, load_encoder
from ..perceptual import LPIPS
from ..job import TrainingJob, active_job
from ..weights import check_name, list_models, load_pipeline, model_version, resolve_model, weights_dir

COMPUTE_THREAD = "t2igan-compute"
CACHED_PIPELINES = 2  # switching between two models (a fine-tune and its base) does not reload either
PRIVATE_FILE_LIFETIME_S = 3600


def outputs_dir() -> Path:
    """The app's own folder for uploads, runs and caches ($T2IGAN_OUTPUTS, else outputs/ beside weights/). Nothing in
    it is served by URL: what a visitor gets back is copied to Gradio's cache per request (private_file)."""
    root = Path(os.environ.get("T2IGAN_OUTPUTS") or weights_dir().parent / "outputs").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def private_file(name: str) -> Path:
    """A path for a file that one request hands back to its visitor (a GIF, an export): in a fresh folder with an
    unguessable name under Gradio's upload folder, the only place besides its cache that Gradio serves without
    `allowed_paths`. Gradio copies the file into its cache under a keyed hash; these folders are swept after an hour."""
    from gradio.utils import get_upload_folder

    root = Path(get_upload_folder())
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("t2igan-*"):
        try:
            if time.time() - old.stat().st_mtime > PRIVATE_FILE_LIFETIME_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # swept by another request at the same moment
    return Path(tempfile.mkdtemp(prefix=f"t2igan-{uuid.uuid4().hex}-", dir=root)) / name


_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{32}")  # secrets.token_urlsafe(24)


def visitor(request, browser: str | None = None) -> str:
    """Who is asking: the login when the app has one, else the page's browser id (`browser_id`, kept in the browser's
    storage: both survive page reloads), else Gradio's session of this page or API client."""
    if request is None:
        return "local"  # called from Python, not through the server
    if getattr(request, "username", None):
        return f"user:{request.username}"
    if isinstance(browser, str) and _BROWSER_ID.fullmatch(browser):
        return f"browser:{browser}"
    return f"session:{request.session_hash}"


def browser_id(stored: str | None) -> str:
    """Page load: this browser's id as stored, or a new unguessable one to store (gr.BrowserState, encrypted with a
    secret of this app run), so that a reload finds its own training job again."""
    return stored if isinstance(stored, str) and _BROWSER_ID.fullmatch(stored) else secrets.token_urlsafe(24)


class Studio:
    """One per app: loads pipelines on demand (reloading a folder that changed) and owns the training job."""

    def __init__(self, device: str | None = None, threads: int | None = None):
        self.device = device
        self.threads = threads
        self.lock = threading.Lock()
        self._pipes: OrderedDict[str, tuple[tuple, object]] = OrderedDict()  # name → (folder version, pipeline)
        self.job: TrainingJob | None = None
        self.job_owner: str | None = None
        self._projector: Projector | None = None  # the last one used; its LPIPS network serves every model
        self._compute = ThreadPoolExecutor(1, thread_name_prefix=COMPUTE_THREAD)

    def compute(self, fn, *args, **kwargs):
        """Run a request's torch work (drawing, fitting, loading) on the app's one compute thread and wait for it.

        Every thread that runs a parallel torch op keeps its own OpenMP team, and Gradio answers requests from a
        pool of up to 40 threads: once many of them had drawn, the idle teams slowed each drawing on 2 cores from
        13 to 20 ms (4 images; in the browser 29-37 ms against 11 from Python). One thread keeps one warm team,
        and requests that would only share the cores take turns. A training job has its own thread."""
        if threading.current_thread().name.startswith(COMPUTE_THREAD):
            return fn(*args, **kwargs)  # already on it (a handler calling another)
        return self._compute.submit(fn, *args, **kwargs).result()

    @staticmethod
    def model_name(name: str | None) -> str | None:
        """The model a request names (checked: a name, never a path from the UI), or the default model."""
        return check_name(name) if name else (list_models() or [None])[0]

    def pipeline(self, name: str | None):
        """The pipeline for `name` (a model under weights/), as its folder is now: a re-export or a replaced folder
        is loaded again; a request keeps the pipeline object it got, so one generation uses one version."""
        name = self.model_name(name)
        with self.lock:
            version = model_version(resolve_model(name, allow_paths=False)) if name else None
            cached = self._pipes.get(name)
            if cached is None or cached[0] != version:
                self._pipes.pop(name, None)
                pipe, loaded = load_pipeline(name, device=self.device, with_version=True)
                self._pipes[name] = (loaded, pipe)
                while len(self._pipes) > CACHED_PIPELINES:
                    self._pipes.popitem(last=False)
            self._pipes.move_to_end(name)
            return self._pipes[name][1]

    def projector(self, name: str | None):
        """A Projector for the model's pipeline as it is now (its inversion encoder if it has one); the perceptual
        network is loaded once per app."""
        pipe = self.pipeline(name)
        with self.lock:
            if self._projector is None or self._projector.pipe is not pipe:
                folder = resolve_model(self.model_name(name), allow_paths=False)
                lpips = self._projector.lpips if self._projector is not None else LPIPS.from_wheel()
                self._projector = Projector(pipe, lpips=lpips, encoder=load_encoder(folder))
            return self._projector

    def generation_threads(self) -> int:
        """CPU threads for a request that draws or fits pictures: --threads if set, else one while a training job
        runs, else $T2IGAN_THREADS or every core.

        Idle, a second thread pays even for a few images: on 2 cores, 4 images took a median 34 ms with 2 threads
        and 47 ms with 1 (16 images: 94 and 157 ms), and fitting 20 held-out emoji a median 2.95 s and 3.58 s
        (`benchmarks/invert.py --per-set 4`). While something else keeps the cores busy, OpenMP threads wait on each
        other: 11 ms/image with 1 thread vs 700 ms/image with 2 while a training run used both cores (start the app
        with --threads 1 beside a training run in another process)."""
        if self.threads:
            return self.threads
        return (threads_from_env() or cpu_cores()) if active_job() is None else 1

    # ------------------------------------------------------------------ the job and its owner
    def owns_job(self, who: str) -> bool:
        return self.job is not None and self.job_owner == who

    def start_job(self, job: TrainingJob, who: str) -> TrainingJob:
        job.start()  # refuses while another job runs in this process
        self.job, self.job_owner = job, who
        return job


def describe_pipeline(name: str, pipe) -> str:
    return f"model **{name}** · {describe(pipe.device)} · text encoder `{pipe.config.text_encoder_id}`"
