"""Text embeddings for the optional dense retriever (the ``copa[embeddings]`` extra).

The built-in model is WordLlama's ``l2_supercat`` static embedding (a 32k-token table of 256-dim
vectors distilled from an LLM's token embeddings), whose weights and tokenizer ship inside the
``wordllama`` wheel: it works offline, needs only numpy, tokenizers and safetensors, and embeds
tens of thousands of sentences a second on one core. We read the two shipped files directly instead
of importing ``wordllama``: its import configures the root logger and pulls pydantic and requests,
and its loader looks for the shipped tokenizer in the wrong folder and then tries to download it.

Spec strings (config ``memory.embeddings``): ``auto`` (the built-in model when the extra is
installed, otherwise none), ``off``, ``static`` (the built-in model, an error when missing).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from copa.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

SPECS = ("auto", "off", "static")
_HINT = "install the extra: pip install 'copa[embeddings]' (or set memory.embeddings = \"off\")"


class Embedder(Protocol):
    name: str  # stored with each vector: vectors of another model are never compared
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""


def _package_dir(name: str) -> Path | None:
    """Where a package lives, without importing it (find_spec runs no package code)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def static_model_files() -> tuple[Path, Path] | None:
    """(weights, tokenizer) of the built-in model, or None when the extra is not installed."""
    base = _package_dir("wordllama")
    if base is None or any(importlib.util.find_spec(m) is None for m in ("numpy", "tokenizers", "safetensors")):
        return None
    weights = base / "weights" / "l2_supercat_256.safetensors"
    tokenizer = base / "tokenizers" / "l2_supercat_tokenizer_config.json"
    return (weights, tokenizer) if weights.is_file() and tokenizer.is_file() else None


class StaticEmbedder:
    """Mean of the token vectors of a text, normalised (what WordLlama's own ``embed`` computes)."""

    name = "wordllama-l2_supercat-256"
    dim = 256

    def __init__(self, weights: Path, tokenizer: Path):
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self._np = np
        self._table = np.ascontiguousarray(load_file(str(weights))["embedding.weight"], dtype=np.float32)
        self._tok = Tokenizer.from_file(str(tokenizer))
        self._tok.no_padding()  # each text is pooled on its own: no padded token is ever summed
        self._tok.no_truncation()
        self._lock = threading.Lock()  # a tokenizers.Tokenizer is not documented as thread-safe

    def neighbours(self, word: str, k: int, min_sim: float) -> list[str]:
        """Whole words of the vocabulary closest in meaning to ``word`` (kitten for cat)."""
        np = self._np
        with self._lock:
            if not hasattr(self, "_words"):
                vocab = [(t[1:], i) for t, i in self._tok.get_vocab().items()
                         if t.startswith("\u2581") and len(t) > 3 and t[1:].isalpha() and t[1:].islower()]
                ids = np.fromiter((i for _, i in vocab), np.int64, len(vocab))
                table = self._table[ids]
                self._words = [w for w, _ in vocab]
                self._word_vecs = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-9)
        v = self.embed([word])[0]
        sims = self._word_vecs @ v
        top = np.argpartition(-sims, k + 1)[:k + 1]
        return [self._words[i] for i in sorted(top, key=lambda i: -sims[i])
                if sims[i] >= min_sim and self._words[i] != word][:k]

    def embed(self, texts: list[str]) -> np.ndarray:
        np = self._np
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        table, out = self._table, np.zeros((len(encodings), self.dim), np.float32)
        last = table.shape[0] - 1
        for i, e in enumerate(encodings):  # per text: 10x faster than np.add.reduceat over all tokens
            ids = e.ids
            if ids:
                out[i] = table[np.minimum(ids, last)].sum(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def available() -> bool:
    return static_model_files() is not None


def resolve(spec: str | None) -> str | None:
    """The embedder a spec asks for ('static'), None for none; cheap (imports nothing heavy)."""
    spec = (spec or "off").strip().lower()
    if spec not in SPECS:
        raise UsageError(f"unknown memory.embeddings value {spec!r}", hint="use one of: " + ", ".join(SPECS))
    if spec == "off":
        return None
    if static_model_files() is None:
        if spec == "auto":
            return None
        raise UsageError("the dense retriever's model is not installed", hint=_HINT)
    return "static"


def model_name(kind: str) -> str:
    """The name stored with the vectors of the embedder ``kind``, without loading it."""
    return StaticEmbedder.name


def load(kind: str) -> Embedder:
    """The embedder named by resolve(), loaded once per process (the table is 32 MB of float32)."""
    with _cache_lock:
        if kind not in _cache:
            files = static_model_files()
            if files is None:
                raise UsageError("the dense retriever's model is not installed", hint=_HINT)
            _cache[kind] = StaticEmbedder(*files)
        return _cache[kind]
