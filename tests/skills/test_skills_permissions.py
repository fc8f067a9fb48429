"""Permission strings (pure logic)."""

import os

import pytest

from copa.skills.permissions import PermissionSyntaxError, host_allowed, parse


def test_parse_declarations(tmp_path):
    p = parse(["net:api.example.org", "fs.read:~/Documents", "fs.write:out", "exec"], cwd=str(tmp_path))
    assert p.net == "hosts" and p.hosts == ("api.example.org",)
    assert p.read == (os.path.expanduser("~/Documents"),) and p.write == (str(tmp_path / "out"),)
    assert p.exec and not p.memory
    assert parse([]).net == "none"
    assert parse(["net:api.example.org", "net"]).net == "any"


@pytest.mark.parametrize("bad", ["fs.read", "net:bad host", "internet", "exec:yes", "fs.delete:/x"])
def test_bad_declarations(bad):
    with pytest.raises(PermissionSyntaxError):
        parse([bad])


def test_host_patterns():
    assert host_allowed("api.example.org", ["api.example.org"])
    assert host_allowed("a.example.org", ["*.example.org"]) and host_allowed("example.org", ["*.example.org"])
    assert not host_allowed("evil.org", ["*.example.org"]) and not host_allowed("example.org.evil", ["example.org"])
