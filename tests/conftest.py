import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_G = dict(resolution=32, z_dim=16, cond_dim=32, channels=(32, 32, 16, 8))
TINY_D = dict(resolution=32, cond_dim=32, channels=(8, 16, 16, 32))


@pytest.fixture(scope="session")
def text_encoder():
    from t2igan.text import TextEncoder

    return TextEncoder.from_pretrained("minilm")


@pytest.fixture()
def tiny_pipe(text_encoder):
    from t2igan import Discriminator, Generator, T2IGANPipeline

    torch.manual_seed(0)
    pipe = T2IGANPipeline(generator=Generator(**TINY_G), discriminator=Discriminator(**TINY_D),
                          text_encoder=text_encoder.model, tokenizer=text_encoder.tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    """The launched app over a weights folder with one tiny model and its own outputs folder (one per test module)."""
    from helpers import running_app

    with running_app(tmp_path_factory.mktemp("app")) as env:
        yield env


@pytest.fixture()
def weights_root(tmp_path, monkeypatch):
    """An empty weights folder that the library uses instead of the repo's."""
    root = tmp_path / "weights"
    root.mkdir()
    monkeypatch.setenv("T2IGAN_WEIGHTS", str(root))
    return root


FIGURES: list[dict] = []  # measured figures that tests report (reliability counts, latencies): printed at the end


def pytest_terminal_summary(terminalreporter):
    import json

    if FIGURES:
        terminalreporter.section("measured figures")
        for figure in FIGURES:
            terminalreporter.write_line(json.dumps(figure))
