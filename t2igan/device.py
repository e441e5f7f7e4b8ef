"""Pick the compute device (CUDA, then Apple MPS, then CPU) and the CPU thread count."""
from __future__ import annotations

import os

import torch

DEVICE_ENV = "T2IGAN_DEVICE"
THREADS_ENV = "T2IGAN_THREADS"
CHOICES = ("auto", "cuda", "mps", "cpu")


def pick_device(preference: str | None = None) -> torch.device:
    """Resolve 'auto' | 'cuda[:N]' | 'mps' | 'cpu' (argument, else $T2IGAN_DEVICE, else auto) to an available device."""
    choice = (preference or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = choice.split(":")[0]
    if kind not in CHOICES:
        raise ValueError(f"unknown device '{choice}': choose one of {', '.join(CHOICES)} (or cuda:N)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{choice}' was asked for, but this torch build sees no CUDA GPU")
    if kind == "mps" and not _mps_available():
        raise ValueError("device 'mps' was asked for, but Apple MPS is not available here")
    return torch.device(choice)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU intra-op threads (argument, else $T2IGAN_THREADS, else torch's default); return the count.

    A training job and the app share the same cores: giving each a deliberate share avoids oversubscription.
    """
    if threads is None and os.environ.get(THREADS_ENV):
        try:
            threads = int(os.environ[THREADS_ENV])
        except ValueError:
            raise ValueError(f"${THREADS_ENV} must be a whole number, got '{os.environ[THREADS_ENV]}'") from None
    if threads is not None:
        if threads < 1:
            raise ValueError(f"thread count must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def describe(device: torch.device) -> str:
    """One line naming the device, e.g. 'cuda (NVIDIA H100)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
