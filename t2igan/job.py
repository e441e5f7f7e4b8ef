"""TrainingJob: the training loop in a background thread, with pause/resume/stop and a pollable event stream.

The UI (or any Python caller) starts a job and polls `events(after=...)` and `status()`; nothing blocks, and the
job keeps going when nobody is watching. One job runs at a time per process.
"""
from __future__ import annotations

import atexit
import threading
import time
import traceback
from collections import deque
from dataclasses import replace

import torch

from .device import lower_thread_priority
from .training import TrainConfig
from .training.recipes import train_stages

STATES = ("idle", "running", "paused", "stopping", "completed", "stopped", "failed")
_active_lock = threading.Lock()
_active: "TrainingJob | None" = None


class JobError(RuntimeError):
    """A job action that is not possible now (e.g. a second job while one runs)."""


def active_job() -> "TrainingJob | None":
    """The job currently running or paused in this process, if any."""
    return _active if _active is not None and _active.is_alive() else None


@atexit.register
def _stop_on_exit(timeout: float = 120.0) -> None:
    """The app is closing (Ctrl-C, end of a script): let the job write its checkpoint and model instead of dying
    mid-step with the interpreter."""
    job = active_job()
    if job is not None:
        job.stop()
        job.wait(timeout)


class TrainingJob:
    """Run `train(config)` in a daemon thread (or, given a list, a recipe's stages one after another); `threads` caps
    the CPU threads the trainer uses; `nice` > 0 lowers their CPU priority (Linux), so that requests served beside
    the job get the cores first and the job takes the rest. A job still running when the process exits normally is
    stopped with a checkpoint first."""

    def __init__(self, config: TrainConfig | list[TrainConfig], threads: int | None = None, max_events: int = 10_000,
                 nice: int = 0):
        self.nice = nice
        stages = config if isinstance(config, list) else [config]
        self.stages = [replace(c, threads=threads if threads is not None else c.threads) for c in stages]
        self.config = self.stages[-1]  # what the job makes: the last stage's model
        self.state = "idle"
        self.error: str | None = None
        self.result: dict | None = None
        self._events: deque[dict] = deque(maxlen=max_events)
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._thread: threading.Thread | None = None
        self._progress = {"step": 0, "total": self.stages[0].steps, "it_s": None, "eta_s": None}
        self.started_at: float | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> "TrainingJob":
        """Start training in the background; refuses if another job is already running in this process."""
        global _active
        with _active_lock:
            if active_job() is not None:
                raise JobError("a training job is already running: stop it (or wait for it) before starting another")
            if self.state != "idle":
                raise JobError(f"this job was already started (state: {self.state})")
            _active = self
            self.state = "running"
            self.started_at = time.time()
            self._thread = threading.Thread(target=self._run, name="t2igan-train", daemon=True)
            self._thread.start()
        return self

    def pause(self) -> None:
        if self.state == "running":
            self._running.clear()
            self._set_state("paused")

    def resume(self) -> None:
        if self.state == "paused":
            self._set_state("running")
            self._running.set()

    def stop(self) -> None:
        """Ask the loop to stop after the current step; it writes a checkpoint and exports the model."""
        if self.state in ("running", "paused"):
            self._set_state("stopping")
            self._stop.set()
            self._running.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (True) or the timeout passes (False)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_alive()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ observation
    def events(self, after: int = 0) -> list[dict]:
        """Events with sequence number > `after` (each has 'seq' and 'type'); never blocks."""
        with self._lock:
            return [e for e in self._events if e["seq"] > after]

    def status(self) -> dict:
        with self._lock:
            return {"state": self.state, "error": self.error, **self._progress, "out": self.config.out,
                    "run_dir": str(self.config.run_path())}

    # ------------------------------------------------------------------ internals
    def _set_state(self, state: str) -> None:
        self.state = state
        self._emit({"type": "state", "state": state})

    def _emit(self, event: dict) -> None:
        with self._lock:
            self._seq += 1
            self._events.append({"seq": self._seq, "time": time.time(), **event})
            if event["type"] == "step":
                self._progress.update(step=event["step"], total=event["total"], it_s=event["it_s"], eta_s=event["eta_s"])

    def _should_stop(self) -> bool:
        self._running.wait()  # blocks here while paused
        return self._stop.is_set()

    def _run(self) -> None:
        lower_thread_priority(self.nice)  # before the first parallel op: the OpenMP team is created with it
        if self.config.threads:
            torch.set_num_threads(self.config.threads)  # per-thread setting: the app's own threads keep theirs
        try:
            self.result = train_stages(self.stages, progress=self._emit, should_stop=self._should_stop)
            self._set_state("stopped" if self.result["status"] == "stopped" else "completed")
        except BaseException as e:  # the thread must report every failure, never swallow it
            self.error = f"{type(e).__name__}: {e}"
            self._emit({"type": "error", "message": self.error, "traceback": traceback.format_exc(limit=6)})
            self._set_state("failed")
