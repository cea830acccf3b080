"""Pure parts of the registry client: challenges, credentials, platforms, config."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pycompose.runtime.registry.auth import (
    load_credentials,
    parse_challenges,
    parse_token,
    token_url,
)
from pycompose.runtime.registry.errors import RegistryAuthError, RegistryError
from pycompose.runtime.registry.manifest import choose_platform, parse_manifest
from pycompose.runtime.registry.policy import bootstrap_hint
from pycompose.runtime.registry.reference import api_host, auth_keys

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DIGEST = "sha256:" + "a" * 64
DIGEST2 = "sha256:" + "b" * 64


def test_challenges_and_token_url() -> None:
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:library/redis:pull"\nBasic realm="x"')
    bearer, basic = parse_challenges(header)
    assert bearer.scheme == "bearer"
    assert bearer.params["service"] == "registry.docker.io"
    assert basic.scheme == "basic"
    url = token_url(bearer, ["repository:library/redis:pull", "repository:a/b:pull"])
    assert url == ("https://auth.docker.io/token?service=registry.docker.io&scope="
                   "repository%3Alibrary%2Fredis%3Apull&scope=repository%3Aa%2Fb%3Apull")
    assert parse_token(b'{"access_token": "t", "expires_in": 300}', "r") == ("t", 300.0)
    with pytest.raises(RegistryAuthError, match="no token"):
        parse_token(b"{}", "r")


def test_credentials_from_docker_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw:with:colons").decode()},
        "reg.lan:5000": {"username": "u", "password": "p"},
        "bad.lan": {"auth": "bm9jb2xvbg=="},  # "nocolon"
    }}))
    hub = load_credentials(config, "docker.io")
    assert hub is not None
    assert (hub.username, hub.password) == ("hub", "pw:with:colons")
    lan = load_credentials(config, "reg.lan:5000")
    assert lan is not None
    assert lan.basic_header() == "Basic " + base64.b64encode(b"u:p").decode()
    assert load_credentials(config, "other.lan") is None
    assert load_credentials(tmp_path / "missing.json", "docker.io") is None
    with pytest.raises(RegistryError, match="bad.lan.auth"):
        load_credentials(config, "bad.lan")


def test_reference_hosts() -> None:
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("localhost:5000") == "localhost:5000"
    assert auth_keys("docker.io")[0] == "https://index.docker.io/v1/"


def test_platform_choice() -> None:
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "m", "digest": DIGEST, "size": 1,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": "m", "digest": DIGEST2, "size": 2,
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": "m", "digest": DIGEST2, "size": 2,
         "platform": {"os": "unknown", "architecture": "unknown"}},
    ]}).encode()
    assert choose_platform(OCI_INDEX, index, "w", {"os": "linux", "architecture": "amd64"}
                           ).digest == DIGEST2
    assert choose_platform(OCI_INDEX, index, "w", {"os": "linux", "architecture": "arm64",
                                                   "variant": "v8"}).digest == DIGEST
    with pytest.raises(RegistryError, match=r"no image for linux/s390x \(available: "
                                            r"linux/amd64, linux/arm64/v8\)"):
        choose_platform(OCI_INDEX, index, "w", {"os": "linux", "architecture": "s390x"})


def test_manifest_validation() -> None:
    with pytest.raises(RegistryError, match="schema 1"):
        parse_manifest("application/vnd.docker.distribution.manifest.v1+prettyjws", b"{}", "w")
    bad = json.dumps({"config": {"digest": "md5:x", "size": 1}, "layers": []}).encode()
    with pytest.raises(RegistryError, match="config: invalid or unsupported digest"):
        parse_manifest("application/vnd.oci.image.manifest.v1+json", bad, "w")


def test_bootstrap_hint() -> None:
    assert "image bootstrap debian:bookworm-slim" in bootstrap_hint("debian:bookworm-slim")
    assert "image bootstrap busybox:latest" in bootstrap_hint("busybox")
    assert "image import" in bootstrap_hint("redis:7")
