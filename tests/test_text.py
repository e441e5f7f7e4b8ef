import pytest
import torch

from t2igan.text import EncoderNotAvailable, TextEncoder, bundled_encoder_path, load_encoder_parts, pooling_for


def test_bundled_minilm_offline_normalised(text_encoder):
    assert (bundled_encoder_path() / "model.safetensors").is_file()
    e = text_encoder.encode(["red heart", "pink heart", "black car"])
    assert e.shape == (3, 384) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert text_encoder.pooling == "mean"
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.1, "'red heart' should be nearer 'pink heart' than 'black car'"


def test_batched_equals_single_and_cache(text_encoder):
    batch = text_encoder.encode(["a cat", "a dog on a skateboard", "a cat"])
    single = text_encoder.encode("a dog on a skateboard")
    assert torch.allclose(batch[1], single[0], atol=1e-5)
    assert torch.equal(batch[0], batch[2])
    assert "a cat" in text_encoder._cache


def test_lru_cache_is_bounded(text_encoder):
    small = TextEncoder(text_encoder.model, text_encoder.tokenizer, cache_size=3)
    small.encode([f"word {i}" for i in range(10)])
    assert len(small._cache) == 3


def test_disk_cache_roundtrip(text_encoder, tmp_path):
    caps = ["a red apple", "a green apple"]
    first = text_encoder.encode_to_disk_cache(caps, tmp_path)
    files = list(tmp_path.glob("captions-*.safetensors"))
    assert len(files) == 1
    again = text_encoder.encode_to_disk_cache(caps, tmp_path)
    assert torch.equal(first, again)
    files[0].write_bytes(b"garbage")  # a damaged cache is rebuilt, not trusted
    assert torch.allclose(text_encoder.encode_to_disk_cache(caps, tmp_path), first)


def test_unknown_encoder_gives_clear_error():
    with pytest.raises(EncoderNotAvailable, match="not available offline"):
        load_encoder_parts("nobody/no-such-encoder-xyz")


def test_pooling_choice_by_model_type():
    class Cfg:
        model_type = "clip_text_model"

    class Clip:
        config = Cfg()
        text_projection = object()

    class Bert:
        class config:
            model_type = "bert"

    assert pooling_for(Clip()) == "projected"
    assert pooling_for(Bert()) == "mean"


def test_other_transformers_encoder_from_local_folder(tmp_path):
    """Any transformers encoder works from a folder: a tiny random CLIP text model, saved and loaded back."""
    from helpers import save_tiny_clip

    enc = TextEncoder.from_pretrained(save_tiny_clip(tmp_path))
    assert enc.pooling == "projected"
    e = enc.encode(["a cat", "a dog"])
    assert e.shape == (2, 24)
    assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    assert (e[0] - e[1]).abs().max() > 1e-3  # pooled at each prompt's end token, not one fixed position


def test_encoders_under_weights_are_listed_and_resolved_by_name(weights_root):
    """weights/encoders/NAME is an encoder by name (the app's list, `--encoder NAME`); it is stored in the models
    trained on it; folders without a config and tokenizer, bad names and the reserved folder names are not encoders."""
    from t2igan.text import portable_encoder_id, resolve_encoder
    from t2igan.weights import ENCODERS, check_name, list_encoders, local_encoder_path

    from helpers import save_tiny_clip

    assert list_encoders() == ["minilm"]  # no weights/encoders folder yet
    folder = weights_root / ENCODERS
    save_tiny_clip(folder / "tiny-clip")
    (folder / "no-tokenizer").mkdir()
    (folder / "no-tokenizer" / "config.json").write_text("{}")
    (folder / "notes.txt").write_text("not a folder")
    (folder / "bad name").mkdir()
    assert list_encoders() == ["minilm", "tiny-clip"]
    assert resolve_encoder("tiny-clip") == str(folder / "tiny-clip")
    assert local_encoder_path("no-tokenizer") is None and local_encoder_path("../tiny-clip") is None
    assert resolve_encoder("no-tokenizer") == "no-tokenizer"  # left for transformers, which says it is not there
    assert portable_encoder_id("tiny-clip") is None  # a local folder: the model stores the encoder itself
    assert portable_encoder_id("minilm") == "minilm" and portable_encoder_id("org/model") == "org/model"
    assert TextEncoder.from_pretrained("tiny-clip").encode("a cat").shape == (1, 24)
    for reserved in ("encoders", "evaluator"):
        with pytest.raises(ValueError, match="reserved"):
            check_name(reserved)
