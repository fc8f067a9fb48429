"""MiniLM's tokenizer for plain ASCII text, read from the model's ``vocab.txt``: a one-shot command
embeds its question (and the few turns a search catches up) without loading the tokenizer.

Why: ``tokenizers.Tokenizer.from_file`` parses the 700 KB ``tokenizer.json`` (25-50 ms of a fresh
``copa ask`` here, on the path the search child's answer waits on); reading ``vocab.txt`` into a dict
takes a few milliseconds.

Why it is exact, for text whose characters are all printable ASCII, tab, newline or carriage return
(anything else returns None and the real tokenizer answers): all-MiniLM-L6-v2's tokenizer is BERT's
uncased one. Its normalizer (``BertNormalizer``: clean text, Chinese characters, accents, lowercase)
turns tab, newline and carriage return into spaces and otherwise only lowercases such text; its
pre-tokenizer (``BertPreTokenizer``) splits on whitespace and makes each ASCII punctuation character a
word of its own; WordPiece then takes, in each word, the longest vocabulary entry from its start
(``##`` before a continuation), and makes the whole word ``[UNK]`` when some part has none or the word
is longer than 100 characters; the post-processor puts ``[CLS]`` before and ``[SEP]`` after, and
truncation keeps the first ``max_tokens - 2`` pieces. A test compares every id with the tokenizer's
own, over random printable ASCII and this repository's documentation.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

MAX_WORD = 100  # characters: a longer word is [UNK] (WordPiece's max_input_chars_per_word)
_PLAIN = re.compile(r"[\x20-\x7e\t\n\r]*")
_WORDS = re.compile(r"[^\s" + re.escape(string.punctuation) + r"]+|[" + re.escape(string.punctuation) + r"]")


class WordPiece:
    def __init__(self, vocab_file: Path):
        self._ids = {tok: i for i, tok in enumerate(vocab_file.read_text(encoding="utf-8").split("\n")) if tok}
        self._unk, self._cls, self._sep = self._ids["[UNK]"], self._ids["[CLS]"], self._ids["[SEP]"]

    def encode(self, text: str, max_tokens: int) -> list[int] | None:
        """The ids the tokenizer gives ``text`` ([CLS] and [SEP] included, at most ``max_tokens``), or
        None when the text holds a character this reading does not cover."""
        if not _PLAIN.fullmatch(text):
            return None
        out: list[int] = []
        room = max_tokens - 2
        for word in _WORDS.findall(text.lower()):
            out += self._word(word)
            if len(out) >= room:
                break
        return [self._cls, *out[:room], self._sep]

    def _word(self, word: str) -> list[int]:
        if len(word) > MAX_WORD:
            return [self._unk]
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self._ids:
                    ids.append(self._ids[piece])
                    start = end
                    break
            else:
                return [self._unk]
        return ids
