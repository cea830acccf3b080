"""A real registry for tests: Debian's ``docker-registry`` (CNCF distribution) on loopback.

``RegistryServer(workdir, auth=...)`` writes a config file (filesystem storage
in ``workdir/storage``, a free port on 127.0.0.1), starts the registry, and
``stop()`` kills it by PID. ``tls=True`` serves HTTPS with a self-signed
certificate for 127.0.0.1 (``cert``). ``auth`` is ``None``, ``"htpasswd"`` (bcrypt file
with ``USER``/``PASSWORD``) or ``"token"`` (the registry trusts a self-signed
certificate; :class:`TokenIssuer` signs RS256 JWTs with its key, via the
``openssl`` command line).
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
USER = "tester"
PASSWORD = "s3cret-pw"


def write_docker_config(directory: Path, host: str, *, password: str = PASSWORD) -> Path:
    """A Docker ``config.json`` in ``directory`` with Basic credentials for ``host``."""
    path = directory / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return path


def registry_available() -> bool:
    return os.path.exists(REGISTRY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    # The registry offers no readiness fd or socket activation: try to connect (bounded).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"docker-registry did not listen on {port}: {log.read_text()[-2000:]}")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """A token server on loopback: ``GET /token?service=&scope=`` with Basic credentials
    (``USER``/``PASSWORD``) gets a JWT granting the scopes asked for; anonymous callers get
    pull access to ``public/*`` only."""

    def __init__(self, workdir: Path, service: str = "pc-test-registry",
                 issuer: str = "pc-test-issuer") -> None:
        self.workdir = workdir
        self.service = service
        self.issuer = issuer
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
             str(self.key), "-out", str(self.cert), "-days", "2", "-subj", "/CN=pc-token"],
            check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests: list[dict[str, object]] = []
        self.port = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, claims: dict[str, object]) -> str:
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        signing_input = f"{b64url(json.dumps(header).encode())}." \
                        f"{b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return f"{signing_input}.{b64url(sig)}"

    def grant(self, scopes: list[str], user: str | None) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = actions.split(",") if user == USER else (
                ["pull"] if name.startswith("public/") else [])
            access.append({"type": kind, "name": name,
                           "actions": [a for a in actions.split(",") if a in allowed]})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        return self.sign(claims)

    def start(self) -> None:
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    raw = base64.b64decode(auth[6:]).decode()
                    name, _, password = raw.partition(":")
                    if name != USER or password != PASSWORD:
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = name
                issuer.requests.append({"user": user, "scope": query.get("scope", [])})
                body = json.dumps({"token": issuer.grant(query.get("scope", []), user),
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class RegistryServer:
    def __init__(self, workdir: Path, *, auth: str | None = None,
                 issuer: TokenIssuer | None = None, port: int | None = None,
                 tls: bool = False) -> None:
        self.workdir = workdir
        self.tls = tls
        self.cert = workdir / "server.crt"
        self.storage = workdir / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.auth = auth
        self.issuer = issuer
        self.config = workdir / "config.yml"
        self.log = workdir / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {os.urandom(8).hex()}",
        ]
        if self.tls:
            key = self.workdir / "server.key"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                 str(key), "-out", str(self.cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
            lines += ["  tls:", f"    certificate: {self.cert}", f"    key: {key}"]
        if self.auth == "htpasswd":
            htpasswd = self.workdir / "htpasswd"
            out = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                 capture_output=True, text=True).stdout
            htpasswd.write_text(out)
            lines += ["auth:", "  htpasswd:", "    realm: pc-test", f"    path: {htpasswd}"]
        elif self.auth == "token":
            assert self.issuer is not None
            lines += ["auth:", "  token:", f"    realm: {self.issuer.realm}",
                      f"    service: {self.issuer.service}", f"    issuer: {self.issuer.issuer}",
                      f"    rootcertbundle: {self.issuer.cert}"]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> RegistryServer:
        log = self.log.open("ab")
        try:
            self.proc = subprocess.Popen([REGISTRY, "serve", str(self.config)],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        _wait_listening(self.port, self.proc, self.log)
        return self

    def kill(self) -> None:
        """SIGKILL by PID (a registry dying mid-request), reaped."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    stop = kill

    def blob_path(self, digest: str) -> Path:
        hexd = digest.partition(":")[2]
        return (self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2]
                / hexd / "data")
