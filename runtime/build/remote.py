"""``ADD <url>``: download an http(s) source for the build.

As Docker: redirects are followed (at most :data:`MAX_REDIRECTS` hops), the file
is named after the last component of the URL's path, is written with mode 0600
and, when the server sends ``Last-Modified``, that time as its mtime; it is never
extracted. ``--checksum=sha256:<hex>`` (also sha384, sha512) is verified. Git
sources (``git@…``, ``….git``, ``…#ref``: :func:`is_git`) are ``gitsource``'s.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import trio

from pycompose.runtime.build.errors import BuildError, DockerfileError
from pycompose.runtime.build.gitsource import is_git
from pycompose.runtime.registry.http import HttpClient, HttpError, resolve

__all__ = ["MAX_REDIRECTS", "Download", "download", "is_git", "is_url", "parse_checksum"]

MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def parse_checksum(value: str, where: str) -> tuple[str, str]:
    """``sha256:<hex>`` → ``("sha256", "<hex>")``."""
    algorithm, sep, hexdigest = value.partition(":")
    size = _ALGORITHMS.get(algorithm.lower())
    hexdigest = hexdigest.lower()
    if not sep or size is None or len(hexdigest) != size \
            or any(c not in "0123456789abcdef" for c in hexdigest):
        raise DockerfileError(f"{where}: --checksum={value}: expected sha256:<64 hex digits> "
                              "(or sha384:, sha512:)")
    return algorithm.lower(), hexdigest


@dataclass(frozen=True)
class Download:
    path: Path        # the downloaded file
    name: str         # its name from the URL ("" when the URL's path names none)
    digest: str       # sha256:<hex> of the content
    url: str          # where it came from in the end (after redirects)


async def download(url: str, dest_dir: Path, where: str, *,
                   checksum: tuple[str, str] | None = None,
                   http: HttpClient | None = None) -> Download:
    """Fetch ``url`` into the empty directory ``dest_dir``, as a file named after the
    URL (``download`` when its path names no file)."""
    name = unquote(posixpath.basename(urlsplit(url).path))
    path = dest_dir / (name if name not in ("", ".", "..") else "download")
    sha = hashlib.sha256()
    extra = hashlib.new(checksum[0]) if checksum and checksum[0] != "sha256" else None
    current = url
    owned = http is None
    client = http or HttpClient()
    try:
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream("GET", current) as resp:
                if resp.status in _REDIRECTS:
                    location = resp.header("location")
                    if not location:
                        raise BuildError(f"{where}: ADD {url}: HTTP {resp.status} without a "
                                         "Location header")
                    current = resolve(current, location)
                    if not current.startswith(("http://", "https://")):
                        raise BuildError(f"{where}: ADD {url}: redirected to {current}, "
                                         "which is not an http(s) URL")
                    continue
                if not 200 <= resp.status < 300:
                    raise BuildError(f"{where}: ADD {url}: HTTP {resp.status} {resp.reason}"
                                     + (f" (from {current})" if current != url else ""))
                async with await trio.open_file(path, "wb") as out:
                    async for chunk in resp.iter_bytes():
                        sha.update(chunk)
                        if extra is not None:
                            extra.update(chunk)
                        await out.write(chunk)
                modified = resp.header("last-modified")
                break
        else:
            raise BuildError(f"{where}: ADD {url}: more than {MAX_REDIRECTS} redirects")
    except HttpError as exc:
        raise BuildError(f"{where}: ADD {url}: {exc}") from None
    finally:
        if owned:
            await client.aclose()
    if checksum is not None:
        got = (extra or sha).hexdigest()
        if got != checksum[1]:
            raise BuildError(f"{where}: ADD {url}: checksum mismatch: expected "
                             f"{checksum[0]}:{checksum[1]}, got {checksum[0]}:{got}")
    await trio.to_thread.run_sync(_finish, path, modified)
    return Download(path, name, "sha256:" + sha.hexdigest(), current)


def _finish(path: Path, modified: str) -> None:
    os.chmod(path, 0o600)
    if modified:
        try:
            when = parsedate_to_datetime(modified).timestamp()
        except (TypeError, ValueError, IndexError):
            return  # a malformed date: the file keeps the download time, as Docker
        os.utime(path, (when, when))
