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
