"""Pick the compute device (CUDA, then Apple MPS, then CPU) and the CPU thread count."""
from __future__ import annotations

import os
import sys
import threading

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


def threads_from_env() -> int | None:
    """$T2IGAN_THREADS as a whole number, or None when it is not set."""
    if not os.environ.get(THREADS_ENV):
        return None
    try:
        return int(os.environ[THREADS_ENV])
    except ValueError:
        raise ValueError(f"${THREADS_ENV} must be a whole number, got '{os.environ[THREADS_ENV]}'") from None


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU intra-op threads (argument, else $T2IGAN_THREADS, else torch's default); return the count.

    A training job and the app share the same cores: giving each a deliberate share avoids oversubscription.
    """
    threads = threads_from_env() if threads is None else threads
    if threads is not None:
        if threads < 1:
            raise ValueError(f"thread count must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def lower_thread_priority(nice: int) -> bool:
    """Raise the calling thread's nice value by `nice` (Linux, where each thread has its own and the OpenMP workers
    it starts afterwards inherit it); True if done. Elsewhere, or where the system refuses, nothing changes: False."""
    if not sys.platform.startswith("linux") or nice <= 0:
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        return True
    except OSError:
        return False


def cpu_cores() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


PRECISIONS = ("auto", "bf16", "fp32")


def fast_bf16(device: torch.device | str) -> bool:
    """True where bf16 autocast makes training faster: CUDA GPUs with bf16, CPUs with AVX-512 BF16 or AMX.

    Elsewhere (AVX2-only CPUs, MPS) bf16 is emulated: a 64-px training step measured 1.9 s in fp32 and over 13 s
    in bf16 on an AVX2 EPYC, against 1.3 s and 0.7 s on an AVX-512 BF16 CPU.
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(bool(check()) for check in checks if check is not None)
    return False


def cpu_name() -> str:
    """The CPU's model name and the vector units that matter here, e.g. 'AMD EPYC (AVX-512 BF16)': benchmarks say
    which CPU they ran on."""
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
        name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), name)
    except OSError:
        pass
    units = "AVX-512 BF16" if fast_bf16("cpu") else "AVX2" if torch.backends.cpu.get_cpu_capability() == "AVX2" else ""
    return f"{name} ({units})" if units else name


def resolve_precision(precision: str | None, device: torch.device | str) -> str:
    """'auto' (or None) → 'bf16' where it is fast on `device` (see fast_bf16), else 'fp32'; others pass through."""
    choice = (precision or "auto").lower()
    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if choice == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return choice


def describe(device: torch.device) -> str:
    """One line naming the device, e.g. 'cuda (NVIDIA H100)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def keep_freed_memory() -> bool:
    """Under glibc's malloc (Linux): keep freed blocks of up to 32 MB for reuse instead of handing them back to the
    kernel; True if set. Elsewhere nothing changes: False. Process-wide, so the CLI and the app call it at start.

    By default glibc returns every block over its adaptive mmap threshold (128 KB to 32 MB) and any free top of the
    heap over 128 KB, so each forward pass faults its activations back in, page by page (~150 MB per batch-16 pass of
    DF-GAN's generator). On a 2-core EPYC that pass took 3.9-5.4 ms per image; with this set 3.0 (tcmalloc preloaded:
    2.7), and batch-64 training steps 0.56 s instead of 0.61 (`t2igan bench --peer`, `benchmarks/train.py`).
    """
    import ctypes
    import platform

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    # 32 MB is the largest mmap threshold glibc accepts on 64-bit; a fixed one also stops it adapting
    return bool(mallopt(m_mmap_threshold, 32 << 20)) & bool(mallopt(m_trim_threshold, 512 << 20))


def allocator_hint(device: torch.device | str, batch_size: int, environ=None, platform: str | None = None) -> str | None:
    """A tip for CPU training at batch 64 and up under glibc's malloc on Linux, else None.

    glibc gives each freed block over 32 MB back to the kernel, so every step faults its large activations in again.
    On a 2-core EPYC (README, Benchmarks) tcmalloc made batch-64 training 1.1-1.2x and batch-128 training 1.4-1.6x
    faster with less memory; it has to be preloaded before Python starts, so t2igan can only point to it.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if torch.device(device).type != "cpu" or batch_size < 64 or not platform.startswith("linux"):
        return None
    if any(name in environ.get("LD_PRELOAD", "") for name in ("tcmalloc", "jemalloc")) or "MALLOC_MMAP_MAX_" in environ:
        return None
    return ("tip: at batch 64 and up, glibc's malloc spends much of each CPU step re-faulting large activations; "
            "start training with LD_PRELOAD=libtcmalloc_minimal.so.4 (Debian/Ubuntu: apt "
            "install libtcmalloc-minimal4), which made batch 128 1.4-1.6x faster on a 2-core CPU (README: Benchmarks)")
