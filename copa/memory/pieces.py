"""Token ids of text pieces, kept between processes, so that a one-shot command can embed its
question with the static model without loading the model's tokenizer.

Why: loading the tokenizer (``Tokenizer.from_file``: 61,249 merges, 32,000 ids) costs a fresh
``copa ask`` 40-70 ms, the largest part of the dense retriever's cost after numpy's import.

Why it is exact: the static model's tokenizer (Llama's) puts a ``▁`` before the text and in place of
every space, then runs BPE over the whole text. BPE only ever joins two neighbours into a token of
the vocabulary, so where no token of the vocabulary spans a boundary, the text's ids are the ids of
the part before it followed by those of the part after it. This vocabulary has no token with a ``▁``
after another character, and (with three exceptions: ``²`` before ``.``, ``,`` and ``)``) none that
joins a letter or digit to another character. A *piece* is therefore a run of ``▁`` followed by
letters and digits or by other characters; its ids can be kept and a text's ids are its pieces' ids.
The exceptions are read from the vocabulary when the cache is made (each as the two characters that
meet at the boundary): a text holding one, or a special token's text, goes to the tokenizer. A model
whose tokenizer is not built this way gets no cache (``usable`` is 0).

What is kept: the vocabulary's own pieces, and every piece of a text the tokenizer encoded in this
cache folder (memories as they are embedded, questions). These are words the user wrote: forgetting
deletes the file (``forget_all``) and it is filled again as memories are embedded.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from array import array
from pathlib import Path
from typing import Any

SPACE = "\u2581"
# a run of ▁, then letters and digits or other characters (never both); or a run of ▁ alone
_PIECE = re.compile(r"\u2581*(?:[^\W_]+|(?:[^\w\u2581]|_)+)|\u2581+")
_EXPECTED_NORMALIZER = {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": SPACE}, {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]}
_BATCH = 500  # pieces per SELECT (SQLite's default limit is 32,766 variables; smaller is kinder to the cache)
FILE_PREFIX = "pieces-"
MAX_REMEMBERED = 200_000  # pieces a process remembers having stored (~20 MB), then it starts again


def normalize(text: str) -> str:
    """What the tokenizer's normalizer makes of ``text`` (``▁`` before it and for every space)."""
    return SPACE + text.replace(" ", SPACE) if text else ""


class PieceCache:
    """The pieces of one model's tokenizer, in a SQLite file (``path``) of copa's cache folder."""

    def __init__(self, path: Path | None):
        self.path = path
        self._rules: tuple[list[str], list[str]] | None = None  # (boundary pairs, special texts)
        # Pieces this process knows are in the file: a long-running process (the daemon) embeds each
        # question with the tokenizer loaded, and learning its pieces should not cost a write each time.
        self._stored: set[str] = set()

    # ---- reading (no tokenizer) -----------------------------------------------------------------
    def ids(self, texts: list[str]) -> list[list[int]] | None:
        """Each text's token ids from the kept pieces; None when one is missing, when a text holds
        what the pieces cannot split, or when there is no usable cache."""
        if self.path is None or not self.path.exists():
            return None
        try:
            uri = self.path.resolve().as_uri() + "?mode=ro"  # reading never makes the file
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as db:
                rules = self._read_rules(db)
                if rules is None:
                    return None
                split_texts = []
                for text in texts:
                    pieces = self._pieces(text, rules)
                    if pieces is None:
                        return None
                    split_texts.append(pieces)
                wanted = list({p for pieces in split_texts for p in pieces})
                known = _select(db, wanted)
        except (sqlite3.Error, ValueError, KeyError, TypeError):
            return None  # absent, being made, or damaged: the tokenizer answers
        if len(known) < len(wanted):
            return None
        return [[i for p in pieces for i in known[p]] for pieces in split_texts]

    def _read_rules(self, db: sqlite3.Connection) -> tuple[list[str], list[str]] | None:
        if self._rules is None:
            rules = dict(db.execute("SELECT key, value FROM rules"))
            if rules.get("usable") != "1":
                return None
            self._rules = (json.loads(rules["pairs"]), json.loads(rules["special"]))
        return self._rules

    @staticmethod
    def _pieces(text: str, rules: tuple[list[str], list[str]]) -> list[str] | None:
        pairs, special = rules
        if any(s in text for s in special):
            return None
        normal = normalize(text)
        if any(p in normal for p in pairs):
            return None
        return _PIECE.findall(normal)

    # ---- writing (the tokenizer is loaded) ------------------------------------------------------
    def learn(self, tokenizer: Any, texts: list[str]) -> None:
        """Keep the pieces of ``texts`` that are not kept yet; the first call makes the file (its
        rules and the vocabulary's pieces). A cache that cannot be written costs only its use."""
        if self.path is None:
            return
        if self._rules is not None and all(p in self._stored for text in texts
                                           for p in (self._pieces(text, self._rules) or ())):
            return
        if len(self._stored) > MAX_REMEMBERED:
            self._stored.clear()
        with contextlib.suppress(OSError, sqlite3.Error, ValueError, KeyError, TypeError):  # damaged: left as is
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(self.path, timeout=5.0, isolation_level=None)) as db:
                db.execute("BEGIN IMMEDIATE")  # two processes making the file: the second waits, then adds
                try:
                    rules = self._ensure_rules(db, tokenizer)
                    if rules is not None:
                        self._rules = rules
                        seen = {p for text in texts for p in (self._pieces(text, rules) or ())} - self._stored
                        new = seen - _select(db, list(seen), ids=False).keys()
                        forms = _with_words(new) - new  # only for new words: most of a batch is known
                        new |= forms - _select(db, list(forms), ids=False).keys()
                        _store(db, tokenizer, list(new), rules[0])
                        self._stored |= seen | forms
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise

    def _ensure_rules(self, db: sqlite3.Connection, tokenizer: Any) -> tuple[list[str], list[str]] | None:
        db.execute("CREATE TABLE IF NOT EXISTS rules (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS pieces (piece TEXT PRIMARY KEY, ids BLOB NOT NULL) WITHOUT ROWID")
        rules = dict(db.execute("SELECT key, value FROM rules"))
        if not rules:
            rules, vocabulary = _rules_of(tokenizer)
            db.executemany("INSERT INTO rules VALUES (?, ?)", list(rules.items()))
            if rules["usable"] == "1":  # the vocabulary's words in their other forms too (see _with_words)
                _store(db, tokenizer, list(_with_words(set(vocabulary))), json.loads(rules["pairs"]))
        if rules.get("usable") != "1":
            return None
        return json.loads(rules["pairs"]), json.loads(rules["special"])


def _with_words(pieces: set[str]) -> set[str]:
    """``pieces`` and each word among them in the forms a question is likely to use it in: after a
    space or not, lower case, capitalised (first in a sentence), and folded (recall embeds a
    question's words one by one, folded, to find their neighbours in meaning: copa/memory/recall.py)."""
    from copa.memory.text import fold

    more = set(pieces)
    for p in pieces:
        word = p.lstrip(SPACE)
        if word.isalnum():
            for form in {word, word.lower(), word.capitalize(), fold(word)}:
                if form.isalnum():  # still one piece (folding can leave a lone combining mark)
                    more.update((form, SPACE + form))
    return more


def forget_all(cache_dir: Path | None) -> None:
    """Delete every piece cache in ``cache_dir`` (they hold words of memories that were forgotten)."""
    if cache_dir is None:
        return
    folder = Path(cache_dir) / "embeddings"
    for p in folder.glob(FILE_PREFIX + "*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            p.unlink()


def _rules_of(tokenizer: Any) -> tuple[dict[str, str], list[str]]:
    """The rules of the tokenizer's cache and the vocabulary's pieces, read from its definition."""
    spec = json.loads(tokenizer.to_str())
    model = spec.get("model") or {}
    special = sorted(t["content"] for t in spec.get("added_tokens") or [])
    usable = (spec.get("normalizer") == _EXPECTED_NORMALIZER and spec.get("pre_tokenizer") is None
              and model.get("type") == "BPE" and not model.get("dropout") and isinstance(model.get("vocab"), dict))
    pairs: set[str] = set()
    vocabulary = []
    for token in (model.get("vocab") or {}) if usable else ():
        if token in special or (token.startswith("<0x") and token.endswith(">")):
            continue  # special tokens are matched before normalizing; byte tokens stand for one character
        parts = _PIECE.findall(token)
        if len(parts) == 1:
            vocabulary.append(token)
        for left, right in zip(parts, parts[1:], strict=False):
            pairs.add(left[-1] + right[0])  # a token spans this boundary: texts holding it are not split
    rules = {"usable": "1" if usable else "0", "pairs": json.dumps(sorted(pairs)), "special": json.dumps(special)}
    return rules, vocabulary


def _select(db: sqlite3.Connection, pieces: list[str], ids: bool = True) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for i in range(0, len(pieces), _BATCH):
        chunk = pieces[i:i + _BATCH]
        marks = ",".join("?" * len(chunk))
        for piece, blob in db.execute(f"SELECT piece, {'ids' if ids else 'NULL'} FROM pieces "
                                      f"WHERE piece IN ({marks})", chunk):
            found[piece] = array("i", blob).tolist() if ids else []
    return found


def _store(db: sqlite3.Connection, tokenizer: Any, pieces: list[str], pairs: list[str]) -> None:
    """Encode each piece after a prefix that ends where a piece must end (so the tokenizer sees the
    piece as it appears inside a text, not as the start of one) and keep the ids after the prefix's."""
    if not pieces:
        return
    pairs_set = set(pairs)
    prefixes = {}
    for first in ("a", "."):  # a letter and an other character: one of them always makes a boundary
        prefixes[first] = tokenizer.encode(first, add_special_tokens=False).ids
    rows, texts, chosen = [], [], []
    for p in pieces:
        body = p.replace(SPACE, " ")
        first = "." if p[0].isalnum() else "a"  # "a" before a ▁ or another character, "." before a letter
        if (first + p[0]) in pairs_set:
            continue
        texts.append(first + body)
        chosen.append((p, prefixes[first]))
    for (p, prefix), enc in zip(chosen, tokenizer.encode_batch(texts, add_special_tokens=False), strict=True):
        got = enc.ids
        if got[:len(prefix)] == prefix:  # else the prefix merged with the piece: not kept
            rows.append((p, array("i", got[len(prefix):]).tobytes()))
    db.executemany("INSERT OR IGNORE INTO pieces VALUES (?, ?)", rows)
