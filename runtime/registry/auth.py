"""Registry authentication: credentials from ``config.json``, challenges, bearer tokens.

A registry answers an unauthenticated request with ``401`` and a
``WWW-Authenticate`` challenge:

* ``Basic realm="…"``: send ``Authorization: Basic`` with the stored credentials;
* ``Bearer realm="https://auth…/token",service="…",scope="repository:x:pull"``:
  ``GET realm?service=…&scope=…`` (with Basic credentials when we have some,
  anonymously otherwise) returns ``{"token": …}`` (or ``access_token``), sent
  as ``Authorization: Bearer`` until it expires.

Credentials come from a Docker ``config.json``: ``auths.<registry>.auth`` is
base64 of ``user:password`` (``username``/``password`` keys are accepted too;
``identitytoken`` is used as an OAuth refresh token). Credential helpers
(``credsStore``/``credHelpers``) are not run.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from pycompose.runtime.registry.errors import RegistryAuthError, RegistryError
from pycompose.runtime.registry.reference import auth_keys


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    identity_token: str = ""

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def load_credentials(config_path: Path | None, domain: str) -> Credentials | None:
    """The credentials ``config_path`` holds for ``domain`` (``docker.io``, ``host:port``)."""
    if config_path is None:
        return None
    try:
        doc = json.loads(Path(config_path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{config_path}: unreadable: {exc}") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    for key in auth_keys(domain):
        entry = auths.get(key)
        if isinstance(entry, dict):
            return _entry(entry, f"{config_path}: auths.{key}")
    return None


def _entry(entry: Mapping[str, object], where: str) -> Credentials | None:
    token = str(entry.get("identitytoken") or "")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth + "=" * (-len(auth) % 4), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise RegistryError(f"{where}.auth: not base64 of user:password") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryError(f"{where}.auth: expected base64 of user:password")
        return Credentials(user, password, token)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name:
        return Credentials(name, secret, token)
    if token:
        return Credentials("<token>", "", token)
    return None


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lower case
    params: dict[str, str]


_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (one challenge a line, as the HTTP client joins them)."""
    out = []
    for line in header.split("\n"):
        line = line.strip()
        if not line:
            continue
        scheme, _, rest = line.partition(" ")
        params = {}
        for m in _PARAM_RE.finditer(rest):
            value = m.group(2) if m.group(2) is not None else m.group(3)
            params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        out.append(Challenge(scheme.lower(), params))
    return out


def token_url(challenge: Challenge, scopes: list[str]) -> str:
    realm = challenge.params.get("realm", "")
    if not realm:
        raise RegistryAuthError("the registry's Bearer challenge has no realm")
    query: list[tuple[str, str]] = []
    if challenge.params.get("service"):
        query.append(("service", challenge.params["service"]))
    for scope in scopes:
        query.append(("scope", scope))
    sep = "&" if "?" in realm else "?"
    return realm + (sep + urlencode(query) if query else "")


def parse_token(body: bytes, realm: str) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token server's JSON answer."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryAuthError(f"token server {realm}: answer is not JSON") from None
    token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise RegistryAuthError(f"token server {realm}: answer has no token")
    expires = doc.get("expires_in", 60)
    lifetime = float(expires) if isinstance(expires, (int, float)) and expires > 0 else 60.0
    return token, lifetime
