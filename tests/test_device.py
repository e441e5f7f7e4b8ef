import os

import pytest
import torch

from t2igan import device as dev


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv(dev.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.pick_device().type == "mps"
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert dev.pick_device().type == "cpu"


def test_env_overrides_and_errors(monkeypatch):
    monkeypatch.setenv(dev.DEVICE_ENV, "cpu")
    assert dev.pick_device().type == "cpu"
    assert dev.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        dev.pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA"):
        dev.pick_device("cuda")


def test_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert dev.set_threads(1) == 1
        monkeypatch.setenv(dev.THREADS_ENV, "2")
        assert dev.set_threads() == 2
        monkeypatch.setenv(dev.THREADS_ENV, "many")
        with pytest.raises(ValueError, match="whole number"):
            dev.set_threads()
        with pytest.raises(ValueError, match=">= 1"):
            dev.set_threads(0)
    finally:
        torch.set_num_threads(before)
    assert "cpu" in dev.describe(torch.device("cpu"))


def test_the_app_draws_on_every_core_unless_a_job_trains(monkeypatch):
    from t2igan.ui import state

    monkeypatch.delenv(dev.THREADS_ENV, raising=False)
    monkeypatch.setattr(state, "cpu_cores", lambda: 4)
    studio = state.Studio(device="cpu")
    assert studio.generation_threads() == 4
    monkeypatch.setenv(dev.THREADS_ENV, "3")
    assert studio.generation_threads() == 3
    monkeypatch.setattr(state, "active_job", lambda: object())  # a training job shares the cores
    assert studio.generation_threads() == 1
    assert state.Studio(device="cpu", threads=2).generation_threads() == 2  # --threads decides
    assert 1 <= dev.cpu_cores() <= (os.cpu_count() or 1)


def test_auto_precision_follows_the_hardware(monkeypatch):
    # CPUs: bf16 only with native bf16 instructions (emulated bf16: a training step over 13 s vs 1.9 s in fp32 on an AVX2 EPYC)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert dev.resolve_precision("auto", "cpu") == "fp32"
    assert dev.resolve_precision(None, "cpu") == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert dev.resolve_precision("auto", "cpu") == "bf16"
    # GPUs: whatever CUDA says; MPS: fp32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert dev.resolve_precision("auto", "cuda") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert dev.resolve_precision("auto", "cuda") == "bf16"
    assert dev.resolve_precision("auto", "mps") == "fp32"
    # an explicit choice is kept; anything else is named in the error
    assert dev.resolve_precision("bf16", "cpu") == "bf16" and dev.resolve_precision("FP32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32, got 'fp16'"):
        dev.resolve_precision("fp16", "cpu")


def test_allocator_hint_only_for_large_cpu_batches_under_glibc_malloc():
    hint = dev.allocator_hint("cpu", 128, environ={}, platform="linux")
    assert hint and "libtcmalloc_minimal.so.4" in hint and "batch 64" in hint
    assert dev.allocator_hint("cpu", 32, environ={}, platform="linux") is None  # measured within noise at batch 32
    assert dev.allocator_hint("cpu", 64, environ={}, platform="linux") == hint
    assert dev.allocator_hint("meta", 128, environ={}, platform="linux") is None  # not the CPU
    assert dev.allocator_hint("cpu", 128, environ={}, platform="darwin") is None  # not glibc
    for env in ({"LD_PRELOAD": "libtcmalloc_minimal.so.4"}, {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"},
                {"MALLOC_MMAP_MAX_": "0"}):
        assert dev.allocator_hint("cpu", 128, environ=env, platform="linux") is None, env


@pytest.mark.skipif(not os.sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_a_thread_can_lower_its_own_priority_only():
    import threading

    def nice_of(tid):
        return os.getpriority(os.PRIO_PROCESS, tid)

    main_before, seen = nice_of(threading.get_native_id()), {}

    def worker():
        tid = threading.get_native_id()
        seen["before"], seen["done"] = nice_of(tid), dev.lower_thread_priority(3)
        seen["after"] = nice_of(tid)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["done"] and seen["after"] == min(19, seen["before"] + 3)
    assert nice_of(threading.get_native_id()) == main_before  # the caller's other threads keep theirs
    assert dev.lower_thread_priority(0) is False



_FAULTS = """
import resource, statistics, sys, torch
from t2igan.device import keep_freed_memory
from t2igan.peer import DFGANGenerator
tuned = keep_freed_memory() if sys.argv[1] == "tuned" else None
torch.set_num_threads(1)
g, z, s = DFGANGenerator().eval(), torch.randn(16, 100), torch.randn(16, 256)
faults = []
with torch.no_grad():
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        g(z, s)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(tuned, statistics.median(faults[2:]))  # after two passes' warm-up
"""


@pytest.mark.skipif(not os.sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keep_freed_memory_stops_refaulting_activations():
    import subprocess
    import sys

    # glibc's mmap threshold starts at 128 KiB and then adapts per process: by default a batch-16 pass faulted
    # 20,000-46,000 pages (80-180 MB) in again in most processes, about 3,000 in some. Both processes hold it at its
    # starting value, so that malloc surely hands big blocks back (144,000 pages per pass measured); the setting must
    # override that (0 measured).
    env = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}

    def page_faults_per_pass(mode):  # a fresh process each: the setting is process-wide and cannot be undone
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True, env=env)
        tuned, faults = out.stdout.split()
        return tuned, float(faults)

    tuned, faults = page_faults_per_pass("tuned")
    if tuned != "True":
        pytest.skip("not glibc's malloc")
    _, plain = page_faults_per_pass("plain")
    assert plain > 20_000, f"malloc did not hand blocks back even at its starting threshold ({plain:.0f} pages per pass)"
    assert faults < plain / 20, (plain, faults)
