"""The distribution API (Docker Registry HTTP API v2 / OCI distribution) for one registry.

::

    async with HttpClient() as http:
        reg = RegistryClient(http, "docker.io", config)
        media_type, body, digest = await reg.get_manifest("library/redis", "7")
        async with reg.blob(repo, digest) as resp:
            async for chunk in resp.iter_bytes(): ...
        await reg.blob_exists(repo, digest)
        await reg.upload_blob(repo, digest, size, chunks, mount_from="other/repo")
        await reg.put_manifest(repo, "latest", media_type, body)

Authentication is negotiated on the first ``401`` (see :mod:`.auth`) and its
result cached per scope set and credentials. The scheme is ``https``; a registry
that the config calls insecure is tried over ``https`` and then plain ``http``.
What a client learns (the scheme, the challenge, tokens until they expire) is
kept for the next client of the same registry on the same ``HttpClient``: the
engine's next pull skips the ping and the token round trips.
Redirects (blob downloads are often sent to a storage host) are followed and
the ``Authorization`` header is not sent to another host.
"""

from __future__ import annotations

import json
import ssl
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

import trio

from pycompose.runtime.images.digest import sha256_digest
from pycompose.runtime.registry.auth import (
    Challenge,
    Credentials,
    load_credentials,
    parse_challenges,
    parse_token,
    token_url,
)
from pycompose.runtime.registry.config import RegistryConfig
from pycompose.runtime.registry.errors import (
    BlobVerificationError,
    ManifestNotFoundError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailableError,
)
from pycompose.runtime.registry.http import HttpClient, HttpError, Response, Url, resolve
from pycompose.runtime.registry.reference import api_host

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = ", ".join(
    (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST))
INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
MANIFEST_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
MAX_MANIFEST_BYTES = 4 << 20
_MAX_REDIRECTS = 5

BodyFactory = Callable[[], AsyncIterator[bytes]]


@dataclass
class _Auth:
    header: str
    expires: float  # trio.current_time(); inf for Basic


@dataclass
class _Session:
    """What clients of one registry learn, shared by those on the same ``HttpClient``."""

    base: str | None = None             # the scheme and host that answered
    pinged: bool = False                # base was chosen by a ping (may need another)
    challenge: Challenge | None = None
    # Authorization per (scope set, credentials' Authorization header or None).
    auth: dict[tuple[tuple[str, ...], str | None], _Auth] = field(default_factory=dict)
    lock: trio.Lock = field(default_factory=trio.Lock)


# Per HttpClient (the engine keeps one for all pulls), per registry base URLs.
_SESSIONS: weakref.WeakKeyDictionary[HttpClient, dict[tuple[str, ...], _Session]] = \
    weakref.WeakKeyDictionary()


class RegistryClient:
    """Requests to one registry (``domain`` as in a reference: ``docker.io``, ``host:5000``).

    ``endpoint`` overrides where requests go (a mirror: ``https://mirror.example``).
    """

    def __init__(self, http: HttpClient, domain: str, config: RegistryConfig | None = None,
                 *, endpoint: str | None = None,
                 credentials: Credentials | None = None) -> None:
        self.http = http
        self.domain = domain
        self.config = config or RegistryConfig()
        host = api_host(domain)
        self.name = endpoint or host
        if endpoint is not None:
            self._bases = [endpoint.rstrip("/")]
        elif self.config.is_insecure(host):
            # Docker's order is HTTPS first; a registry on loopback is nearly always plain
            # HTTP, so there HTTP goes first (the ping below tells a TLS server apart).
            self._bases = [f"https://{host}", f"http://{host}"]
            if _loopback(host):
                self._bases.reverse()
        else:
            self._bases = [f"https://{host}"]
        self._configure_tls(host)
        self._credentials = credentials
        self._credentials_loaded = credentials is not None or endpoint is not None
        self._session = _SESSIONS.setdefault(http, {}).setdefault(tuple(self._bases),
                                                                   _Session())

    # -- connection and auth --------------------------------------------------------

    def _configure_tls(self, host: str) -> None:
        cas, client = self.config.tls_files(host)
        if not cas and client is None:
            return
        context = ssl.create_default_context()
        try:
            for ca in cas:
                context.load_verify_locations(cafile=str(ca))
            if client is not None:
                context.load_cert_chain(str(client[0]), str(client[1]))
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(f"registry {host}: bad certificate files "
                                f"({', '.join(map(str, cas))}): {exc}") from None
        url = Url.parse(f"https://{host}/")
        self.http.set_ssl_context(url.host, url.port, context)

    async def _ensure_base(self) -> str:
        """Pick https or (insecure registries) http with a ``GET /v2/`` ping. With one
        choice there is no ping: the first request itself brings the auth challenge (one
        round trip less for a registry that serves anonymous pulls)."""
        session = self._session
        async with session.lock:
            if session.base is not None:
                return session.base
            if len(self._bases) == 1:
                session.base = self._bases[0]
                return session.base
            last: HttpError | None = None
            for base in self._bases:
                try:
                    resp, _ = await self.http.request("GET", base + "/v2/", limit=1 << 20)
                except HttpError as exc:
                    last = exc
                    continue
                if resp.status >= 500:
                    raise RegistryUnavailableError(
                        f"registry {self.name}: {resp.status} {resp.reason}")
                if resp.status not in (200, 401):  # not the API (an HTTPS port spoken to
                    last = HttpError(f"{base}/v2/ answered {resp.status}")  # in plain HTTP)
                    continue
                if resp.status == 401:
                    session.challenge = _pick(parse_challenges(resp.header("www-authenticate")))
                session.base, session.pinged = base, True
                return base
            raise RegistryUnavailableError(f"registry {self.name} is unreachable: {last}")

    def _creds(self) -> Credentials | None:
        if not self._credentials_loaded:
            self._credentials = load_credentials(self.config.docker_config, self.domain)
            self._credentials_loaded = True
        return self._credentials

    async def _authorize(self, scopes: tuple[str, ...], *, renew: bool) -> str | None:
        """The ``Authorization`` header for ``scopes`` (None: anonymous is all we have)."""
        challenge = self._session.challenge
        if challenge is None:
            return None
        creds = self._creds()
        key = (scopes, creds.basic_header() if creds is not None else None)
        cached = self._session.auth.get(key)
        if cached is not None and not renew and cached.expires > trio.current_time():
            return cached.header
        if challenge.scheme == "basic":
            if creds is None:
                raise RegistryAuthError(
                    f"registry {self.name} wants a user name and password: log in with "
                    "`docker login` (pycompose reads ~/.docker/config.json)")
            auth = _Auth(creds.basic_header(), float("inf"))
        elif challenge.scheme == "bearer":
            auth = await self._fetch_token(challenge, scopes, creds)
        else:
            raise RegistryAuthError(
                f"registry {self.name}: unsupported authentication scheme {challenge.scheme!r}")
        self._session.auth[key] = auth
        return auth.header

    async def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...],
                           creds: Credentials | None) -> _Auth:
        url = token_url(challenge, list(scopes))
        headers = {}
        if creds is not None and creds.username != "<token>":
            headers["Authorization"] = creds.basic_header()
        try:
            resp, body = await self.http.request("GET", url, headers=headers, limit=1 << 20)
        except HttpError as exc:
            raise RegistryUnavailableError(
                f"registry {self.name}: token server unreachable: {exc}") from None
        realm = challenge.params.get("realm", "")
        if resp.status in (401, 403):
            raise RegistryAuthError(
                f"registry {self.name}: token server {realm} refused "
                f"{'the credentials' if creds else 'anonymous access'} ({resp.status})")
        if resp.status != 200:
            raise RegistryAuthError(
                f"registry {self.name}: token server {realm} answered {resp.status}")
        token, lifetime = parse_token(body, realm)
        return _Auth(f"Bearer {token}", trio.current_time() + max(lifetime - 10, 5))

    @asynccontextmanager
    async def _send(self, method: str, path: str, scopes: tuple[str, ...], *,
                    headers: dict[str, str] | None = None,
                    body: bytes | BodyFactory | None = None,
                    content_length: int | None = None,
                    what: str) -> AsyncIterator[Response]:
        """One request with auth (renewed once on 401) and redirects; raises on transport
        failure and on 401/403/5xx, yields any other response (the caller reads the status)."""
        base = await self._ensure_base()
        url = path if path.startswith(("http://", "https://")) else base + path
        origin = Url.parse(base).origin
        renewed = False
        redirects = 0
        while True:
            hdrs = dict(headers or {})
            if Url.parse(url).origin == origin:
                auth = await self._authorize(scopes, renew=renewed)
                if auth:
                    hdrs["Authorization"] = auth
            payload = body() if callable(body) else body
            try:
                async with self.http.stream(method, url, headers=hdrs, body=payload,
                                            content_length=content_length) as resp:
                    if resp.status == 401 and not renewed:
                        challenges = parse_challenges(resp.header("www-authenticate"))
                        if challenges:
                            self._session.challenge = _pick(challenges)
                            renewed = True
                            continue
                    if resp.status in (401, 403):
                        detail = _error_detail(await _safe_read(resp))
                        raise RegistryAuthError(
                            f"registry {self.name}: access to {what} denied "
                            f"({resp.status}{': ' + detail if detail else ''})")
                    if resp.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                        redirects += 1
                        if redirects > _MAX_REDIRECTS:
                            raise RegistryError(f"registry {self.name}: too many redirects "
                                                f"for {what}")
                        url = resolve(url, resp.header("location"))
                        continue
                    if resp.status >= 500:
                        detail = _error_detail(await _safe_read(resp))
                        raise RegistryUnavailableError(
                            f"registry {self.name}: {what}: {resp.status} {resp.reason}"
                            f"{': ' + detail if detail else ''}")
                    yield resp
                    return
            except HttpError as exc:
                if self._session.pinged and self._session.base == base:
                    self._session.base = None  # the next request pings again
                raise RegistryUnavailableError(f"registry {self.name}: {what}: {exc}") from None

    # -- reading ------------------------------------------------------------------------

    async def get_manifest(self, repo: str, reference: str, *,
                           accept: str = MANIFEST_ACCEPT) -> tuple[str, bytes, str]:
        """(media type, exact bytes, digest) of a manifest or index by tag or digest.

        A manifest asked for by digest is checked against it.
        """
        what = f"{repo}:{reference}" if not reference.startswith("sha256:") \
            else f"{repo}@{reference}"
        async with self._send("GET", f"/v2/{repo}/manifests/{quote(reference)}",
                              (f"repository:{repo}:pull",), headers={"Accept": accept},
                              what=what) as resp:
            if resp.status == 404:
                raise ManifestNotFoundError(
                    f"manifest for {self.domain}/{what} not found: manifest unknown")
            if resp.status != 200:
                detail = _error_detail(await _safe_read(resp))
                raise RegistryError(f"registry {self.name}: {what}: {resp.status} "
                                    f"{resp.reason}{': ' + detail if detail else ''}")
            try:
                data = await resp.read(MAX_MANIFEST_BYTES)
            except HttpError as exc:
                raise RegistryUnavailableError(f"registry {self.name}: {what}: {exc}") from None
            media_type = resp.header("content-type").split(";")[0].strip()
            announced = resp.header("docker-content-digest")
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise BlobVerificationError(
                f"registry {self.name}: manifest {what} has digest {digest} (corrupt)")
        if announced.startswith("sha256:") and announced != digest:
            raise BlobVerificationError(
                f"registry {self.name}: manifest {what} has digest {digest}, but the registry "
                f"says {announced} (corrupt or altered on the way)")
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = _sniff_media_type(data)
        return media_type, data, digest

    async def get_blob_bytes(self, repo: str, digest: str, limit: int = 8 << 20) -> bytes:
        """A small blob (an image config), verified."""
        async with self.blob(repo, digest) as resp:
            try:
                data = await resp.read(limit)
            except HttpError as exc:
                raise RegistryUnavailableError(
                    f"registry {self.name}: blob {digest}: {exc}") from None
        if sha256_digest(data) != digest:
            raise BlobVerificationError(
                f"registry {self.name}: blob {repo}@{digest} does not match its digest")
        return data

    @asynccontextmanager
    async def blob(self, repo: str, digest: str, *, offset: int = 0) -> AsyncIterator[Response]:
        """Stream a blob (from ``offset`` with a Range request); 200/206 guaranteed."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with self._send("GET", f"/v2/{repo}/blobs/{digest}", (f"repository:{repo}:pull",),
                              headers=headers, what=f"blob {repo}@{digest}") as resp:
            if resp.status == 404:
                raise RegistryError(f"registry {self.name}: blob {repo}@{digest} not found")
            if resp.status not in (200, 206) or (offset and resp.status != 206):
                raise RegistryError(
                    f"registry {self.name}: blob {repo}@{digest}: {resp.status} {resp.reason}")
            yield resp

    async def blob_exists(self, repo: str, digest: str, *, push: bool = False) -> bool:
        scopes = (f"repository:{repo}:pull,push",) if push else (f"repository:{repo}:pull",)
        async with self._send("HEAD", f"/v2/{repo}/blobs/{digest}", scopes,
                              what=f"blob {repo}@{digest}") as resp:
            return resp.status == 200

    # -- writing ------------------------------------------------------------------------

    async def upload_blob(self, repo: str, digest: str, size: int, chunks: BodyFactory, *,
                          mount_from: Sequence[str] = (), chunk_size: int | None = None) -> str:
        """Upload a blob unless it is there; returns ``exists``, ``mounted`` or ``uploaded``.

        ``mount_from``: other repositories of this registry that may hold the blob
        (a cross-repository mount costs no data). ``chunk_size``: upload in PATCH
        chunks of that size instead of one monolithic PUT.
        """
        push = (f"repository:{repo}:pull,push",)
        if await self.blob_exists(repo, digest, push=True):
            return "exists"
        for source in mount_from:
            if source == repo:
                continue
            scopes = push + (f"repository:{source}:pull",)
            async with self._send("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}"
                                  f"&from={quote(source, safe='')}", scopes,
                                  what=f"mount {digest}") as resp:
                await _safe_read(resp)
                if resp.status == 201:
                    return "mounted"
                location = resp.header("location")
                if resp.status == 202 and location:
                    return await self._finish_upload(repo, location, digest, size, chunks,
                                                     chunk_size)
        async with self._send("POST", f"/v2/{repo}/blobs/uploads/", push,
                              what=f"upload to {repo}") as resp:
            await _safe_read(resp)
            if resp.status != 202 or not resp.header("location"):
                raise RegistryError(f"registry {self.name}: cannot start an upload to {repo}: "
                                    f"{resp.status} {resp.reason}")
            location = resp.header("location")
        return await self._finish_upload(repo, location, digest, size, chunks, chunk_size)

    async def _finish_upload(self, repo: str, location: str, digest: str, size: int,
                             chunks: BodyFactory, chunk_size: int | None) -> str:
        push = (f"repository:{repo}:pull,push",)
        base = await self._ensure_base()
        location = resolve(base + "/v2/", location)
        what = f"upload of {digest} to {repo}"
        if chunk_size is None:
            url = _with_query(location, "digest", digest)
            async with self._send("PUT", url, push, body=chunks, content_length=size,
                                  headers={"Content-Type": "application/octet-stream"},
                                  what=what) as resp:
                return await _expect_created(resp, self.name, what)
        offset = 0
        buffered = bytearray()

        async def send_chunk(data: bytes, start: int, loc: str) -> str:
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Range": f"{start}-{start + len(data) - 1}"}
            async with self._send("PATCH", loc, push, body=bytes(data), headers=headers,
                                  what=what) as resp:
                await _safe_read(resp)
                if resp.status != 202:
                    raise RegistryError(f"registry {self.name}: {what}: chunk at {start}: "
                                        f"{resp.status} {resp.reason}")
                return resolve(loc, resp.header("location") or loc)

        async for piece in chunks():
            buffered += piece
            while len(buffered) >= chunk_size:
                location = await send_chunk(bytes(buffered[:chunk_size]), offset, location)
                offset += chunk_size
                del buffered[:chunk_size]
        if buffered:
            location = await send_chunk(bytes(buffered), offset, location)
            offset += len(buffered)
        if offset != size:
            raise BlobVerificationError(f"{what}: read {offset} bytes, expected {size}")
        async with self._send("PUT", _with_query(location, "digest", digest), push,
                              what=what) as resp:
            return await _expect_created(resp, self.name, what)

    async def put_manifest(self, repo: str, reference: str, media_type: str,
                           body: bytes) -> str:
        """Upload a manifest or index under a tag (or its digest); returns its digest."""
        what = f"manifest {repo}:{reference}"
        async with self._send("PUT", f"/v2/{repo}/manifests/{quote(reference)}",
                              (f"repository:{repo}:pull,push",),
                              headers={"Content-Type": media_type}, body=body,
                              what=what) as resp:
            detail = _error_detail(await _safe_read(resp))
            if resp.status != 201:
                raise RegistryError(f"registry {self.name}: {what}: {resp.status} "
                                    f"{resp.reason}{': ' + detail if detail else ''}")
        return sha256_digest(body)


def _loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    return name == "localhost" or name.startswith("127.") or name == "::1"


def _pick(challenges: list[Challenge]) -> Challenge | None:
    for scheme in ("bearer", "basic"):
        for ch in challenges:
            if ch.scheme == scheme:
                return ch
    return challenges[0] if challenges else None


async def _safe_read(resp: Response) -> bytes:
    try:
        return await resp.read(1 << 20)
    except HttpError:
        return b""


async def _expect_created(resp: Response, name: str, what: str) -> str:
    detail = _error_detail(await _safe_read(resp))
    if resp.status != 201:
        if "DIGEST_INVALID" in detail or "digest" in detail.lower():
            raise BlobVerificationError(f"registry {name}: {what}: {detail}")
        raise RegistryError(f"registry {name}: {what}: {resp.status} {resp.reason}"
                            f"{': ' + detail if detail else ''}")
    return "uploaded"


def _error_detail(body: bytes) -> str:
    """``CODE: message`` from a registry error document (or its first bytes)."""
    try:
        doc = json.loads(body)
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            return f"{errs[0].get('code', '')}: {errs[0].get('message', '')}".strip(": ")
    except ValueError:
        pass
    return body[:200].decode("utf-8", "replace").strip()


def _sniff_media_type(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    if isinstance(doc.get("mediaType"), str):
        return str(doc["mediaType"])
    if "manifests" in doc:
        return MEDIA_OCI_INDEX
    if "layers" in doc:
        return MEDIA_OCI_MANIFEST
    if "fsLayers" in doc:
        return "application/vnd.docker.distribution.manifest.v1+json"
    return ""


def _with_query(url: str, key: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{key}={quote(value, safe='')}"
