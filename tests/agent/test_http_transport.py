"""The providers' HTTP client builds TLS on the first https request: https is still verified exactly as
httpx verifies it (a self-signed server is refused, SSL_CERT_FILE is honoured), plain http needs no
CA bundle, and proxies in the environment are still used."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from devkit.servers import self_signed_cert

from copa.providers.transport import make_client


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.server.name}: {self.path}".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(name: str, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    srv.name = name  # type: ignore[attr-defined]
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def no_proxies(monkeypatch):
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                "no_proxy", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def tls_server(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    for url in _serve("tls", ctx):
        yield url, cert


@pytest.fixture
def plain_server():
    yield from _serve("plain")


def test_a_self_signed_https_server_is_refused(no_proxies, tls_server):
    url, _ = tls_server
    with make_client(timeout=5) as c, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        c.get(url + "/x")


def test_https_trusts_what_httpx_trusts(no_proxies, tls_server, monkeypatch):
    url, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx's trust_env: this bundle instead of certifi's
    with make_client(timeout=5) as c:
        r = c.get(url + "/x")
    assert r.status_code == 200 and r.text == "hello from tls: /x"


def test_plain_http_loads_no_certificate_bundle(no_proxies, plain_server, monkeypatch):
    loaded = []
    real = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations",
                        lambda self, *a, **k: (loaded.append(a or k), real(self, *a, **k))[1])
    with make_client(timeout=5) as c:
        r = c.get(plain_server + "/y")
    assert r.text == "hello from plain: /y"
    assert loaded == []
    with make_client(timeout=5) as c, pytest.raises(httpx.ConnectError):  # the check sees a bundle loaded
        c.get("https://127.0.0.1:9/")
    assert loaded


def test_a_proxy_in_the_environment_is_used(no_proxies, plain_server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", plain_server)  # the server answers the absolute-form request itself
    with make_client(timeout=5) as c:
        r = c.get("http://model.invalid/v1/models")
    assert r.text == "hello from plain: http://model.invalid/v1/models"
