"""Web: fetch a page and return its readable text (no scripts, styles or markup).

Limits: only http(s), at most ``max_bytes`` downloaded and ``timeout`` seconds in all.
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

from copa.skills import skill

_BLOCK = {"p", "div", "section", "article", "header", "footer", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5",
          "h6", "pre", "blockquote", "table", "ul", "ol", "dd", "dt", "hr", "main", "aside", "nav", "form"}
_SKIP = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if tag in _BLOCK:
            self.parts.append("\n")
        if tag in ("h1", "h2", "h3"):
            self.parts.append("#" * int(tag[1]) + " ")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag):
        if tag in _SKIP and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, readable text) of an HTML document."""
    p = _Text()
    p.feed(html)
    p.close()
    text = "".join(p.parts)
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return " ".join(p.title.split()), "\n".join(out).strip()


def _check_host(request) -> None:
    """Refuse link-local and unspecified addresses (cloud metadata services live at 169.254.169.254)."""
    import ipaddress
    import socket

    host = request.url.host
    try:
        infos = socket.getaddrinfo(host, request.url.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise ValueError(f"cannot resolve {host}: {e.strerror}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if ip.is_link_local or ip.is_unspecified or ip.is_multicast:
            raise PermissionError(f"{host} is a link-local or reserved address ({ip}); not fetched")


@skill(permissions=["net"], timeout=60)
def fetch_url(url: str, max_chars: int = 20000, max_bytes: int = 2_000_000, timeout: float = 20.0) -> dict:
    """Fetch a web page (or text file) and return its readable text.

    Args:
        url: an http:// or https:// address.
        max_chars: most characters of text to return.
        max_bytes: stop downloading after this many bytes.
        timeout: seconds for the whole download.
    """
    import httpx

    if not re.match(r"^https?://", url, re.I):
        raise ValueError("only http:// and https:// addresses can be fetched")
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": "copa-web-skill/1 (+https://github.com/)", "Accept": "text/html,text/plain,*/*;q=0.5"}
    with httpx.Client(follow_redirects=True, timeout=min(timeout, 30.0), headers=headers,
                      event_hooks={"request": [_check_host]}) as client, \
            client.stream("GET", url) as r:
        ctype = r.headers.get("content-type", "")
        body, truncated = bytearray(), False
        for chunk in r.iter_bytes():
            body += chunk
            if len(body) >= max_bytes:
                truncated = True
                del body[max_bytes:]
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the download took longer than {timeout:g} s")
        charset = r.charset_encoding or "utf-8"
        status, final = r.status_code, str(r.url)
    if not any(t in ctype for t in ("text/", "html", "json", "xml")) and ctype:
        raise ValueError(f"{url} is {ctype.split(';')[0]}, not text ({len(body)} bytes)")
    raw = bytes(body).decode(charset, errors="replace")
    title, text = html_to_text(raw) if "html" in ctype or raw.lstrip()[:15].lower().startswith(("<!doctype", "<html")) \
        else ("", raw.strip())
    if len(text) > max_chars:
        text, truncated = text[:max_chars], True
    return {"url": url, "final_url": final, "status": status, "content_type": ctype.split(";")[0],
            "title": title, "text": text, "truncated": truncated}
