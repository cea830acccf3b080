"""Base images without a registry: ``busybox`` from Debian's busybox-static, ``debian:SUITE``
and ``debian:SUITE-slim`` with ``debootstrap`` from a Debian mirror.

::

    image = bootstrap(store, "debian:bookworm-slim", mirror=None, log=print)

* ``busybox``: the static binary, one symlink per applet, ``/etc/passwd``,
  ``/etc/group``, ``/tmp``; ``CMD ["sh"]``.
* ``debian:SUITE``: ``debootstrap --variant=minbase`` (the variant Docker's
  official images start from), apt sources in deb822 form for the suite, its
  updates and security, the apt settings of the official images (clean
  caches after installs, no translations, no suggests kept installed),
  ``CMD ["bash"]``. ``-slim`` also drops documentation, man pages and locales
  and tells dpkg to keep them out (``/etc/dpkg/dpkg.cfg.d/docker``).

Reproducibility: logs, apt lists and caches, ``machine-id`` and other
per-run files are removed; password-change dates in ``/etc/shadow`` and every
mtime newer than ``SOURCE_DATE_EPOCH`` are clamped to it (by default the
``Date`` of the suite's ``Release`` file, so the same mirror state gives the
same epoch); the layer tar is written in sorted order with numeric owners and
the config's ``created`` is that epoch. The same package set then gives the
same layer digest and image id; see the README for what was measured.

The mirror defaults to the host's own apt source for Debian (deb822
``/etc/apt/sources.list.d/*.sources`` or ``/etc/apt/sources.list``), else
``http://deb.debian.org/debian``. Needs root (debootstrap chroots and makes
device nodes).
"""

from __future__ import annotations

import calendar
import email.utils
import fnmatch
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pycompose.runtime.errors import ImageError
from pycompose.runtime.images.config import ContainerConfig, empty_config, format_time
from pycompose.runtime.images.store import Image, ImageStore

__all__ = ["bootstrap", "bootstrap_busybox", "bootstrap_debian", "host_debian_mirror",
           "parse_name", "KNOWN"]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX = Path("/bin/busybox")
KNOWN = "busybox, debian:SUITE, debian:SUITE-slim (SUITE: bookworm, bullseye, trixie, 12, …)"
_VERSIONS = {"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie"}

Log = Callable[[str], None]
_PER_PACKAGE = re.compile(r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) "
                          r"[a-z0-9][^ ]*\.\.\.$")

SLIM_DPKG = """\
# pycompose debian-slim: as the official -slim images, no documentation or locales
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""
APT_CONF = {
    "docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'),
    "docker-no-languages": 'Acquire::Languages "none";\n',
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
}
# Per-run files that would make two bootstraps differ (paths relative to the rootfs).
VOLATILE = (
    "var/lib/apt/lists", "var/cache/apt", "var/log", "var/cache/ldconfig/aux-cache",
    "var/lib/dpkg/status-old", "var/lib/dpkg/diversions-old", "var/lib/dpkg/statoverride-old",
    "var/cache/debconf/config.dat-old", "var/cache/debconf/templates.dat-old",
    "var/lib/dpkg/available-old", "etc/machine-id", "var/lib/dbus/machine-id",
    "etc/hostname", "etc/resolv.conf", "root/.bash_history", "debootstrap",
)
_KEEP_DIRS = ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt")


def parse_name(name: str) -> tuple[str, str, bool]:
    """``(kind, suite, slim)`` for a bootstrappable name; ``ImageError`` for others."""
    repo, _, tag = name.partition(":")
    repo = repo.removeprefix("docker.io/").removeprefix("library/")
    if repo == "busybox" and tag in ("", "latest"):
        return "busybox", "", False
    if repo == "debian":
        tag = tag or host_suite()
        slim = tag.endswith("-slim")
        suite = tag.removesuffix("-slim")
        suite = _VERSIONS.get(suite, suite)
        if re.fullmatch(r"[a-z]+", suite) and suite != "latest":
            return "debian", suite, slim
        if suite == "latest":
            return "debian", host_suite(), slim
    raise ImageError(f"cannot bootstrap {name!r}: known names are {KNOWN}")


def host_suite() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.partition("=")[2].strip('"') or "bookworm"
    except OSError:
        pass
    return "bookworm"


def host_debian_mirror(root: Path = Path("/")) -> tuple[str, str]:
    """(mirror, security mirror) from the host's apt sources; defaults when none is found."""
    mirror, security = "", ""
    uris: list[str] = []
    sources = root / "etc/apt/sources.list.d"
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                uris += line.partition(":")[2].split()
    for path in [root / "etc/apt/sources.list", *sorted(sources.glob("*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if parts and parts[0] == "deb":
                uri = next((p for p in parts[1:] if not p.startswith("[")
                            and not p.endswith("]") and "=" not in p), "")
                if uri:
                    uris.append(uri)
    for uri in uris:
        uri = uri.rstrip("/")
        if uri.endswith("/debian-security") and not security:
            security = uri
        elif uri.endswith("/debian") and not mirror:
            mirror = uri
    return mirror or DEFAULT_MIRROR, security or DEFAULT_SECURITY


def dpkg_architecture() -> str:
    try:
        out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        from pycompose.runtime.images.config import host_architecture

        return host_architecture()


def bootstrap(store: ImageStore, name: str, *, mirror: str | None = None,
              tag: str | None = None, log: Log = lambda _line: None,
              source_date_epoch: int | None = None) -> Image:
    """Build the base image ``name`` and store it under ``tag`` (default: ``name``)."""
    kind, suite, slim = parse_name(name)
    if kind == "busybox":
        return bootstrap_busybox(store, tag or "busybox:latest", log=log)
    ref = tag or f"debian:{suite}{'-slim' if slim else ''}"
    return bootstrap_debian(store, suite, slim=slim, ref=ref, mirror=mirror, log=log,
                            source_date_epoch=source_date_epoch)


# --- helpers --------------------------------------------------------------------------------


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for n in dirnames + filenames:
            yield base / n


def clamp_mtimes(root: Path, epoch: int) -> None:
    """Every mtime (and atime) newer than ``epoch`` becomes ``epoch``; symlinks included."""
    limit = epoch * 1_000_000_000
    for path in [*_walk(root), root]:
        st = os.lstat(path)
        if st.st_mtime_ns > limit or st.st_mtime_ns % 1_000_000_000:
            when = min(st.st_mtime_ns, limit) // 1_000_000_000 * 1_000_000_000
            os.utime(path, ns=(when, when), follow_symlinks=False)


def _rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _image_from_dir(store: ImageStore, rootfs: Path, ref: str, config: ContainerConfig,
                    epoch: int, comment: str) -> Image:
    layer = store.add_layer_from_dir(rootfs)
    created = format_time(_utc(epoch))
    image_config = empty_config().derive(diff_ids=[layer.diff_id], config=config,
                                         created=created, created_by=comment,
                                         comment="pycompose image bootstrap")
    return store.create_image(image_config, ref)


def _utc(epoch: int):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


def _workdir(store: ImageStore) -> Path:
    parent = store.root.parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bootstrap-", dir=parent))


# --- busybox --------------------------------------------------------------------------------

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
users:x:100:
nogroup:x:65534:
"""


def bootstrap_busybox(store: ImageStore, ref: str = "busybox:latest", *,
                      log: Log = lambda _line: None) -> Image:
    """A busybox image from the host's ``/bin/busybox`` (Debian ``busybox-static``)."""
    if not BUSYBOX.is_file():
        raise ImageError("cannot bootstrap busybox: /bin/busybox is missing "
                         "(apt-get install busybox-static)")
    out = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True)
    if out.returncode != 0 or "bin/sh" not in out.stdout:
        raise ImageError("cannot bootstrap busybox: /bin/busybox is not a static busybox "
                         "with applets (install Debian's busybox-static)")
    work = _workdir(store)
    try:
        root = work / "rootfs"
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home", "var/spool/mail",
                  "var/www", "proc", "sys", "dev", "run", "tmp"):
            (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "tmp", 0o1777)
        os.chmod(root / "root", 0o700)
        shutil.copyfile(BUSYBOX, root / "bin/busybox")
        os.chmod(root / "bin/busybox", 0o755)
        applets = sorted(line.strip() for line in out.stdout.splitlines() if line.strip())
        for applet in applets:
            target = root / applet
            if applet == "bin/busybox" or target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to("/bin/busybox")
        (root / "etc/passwd").write_text(PASSWD)
        (root / "etc/group").write_text(GROUP)
        (root / "etc/shadow").write_text("".join(
            f"{line.split(':')[0]}:*:10933:0:99999:7:::\n" for line in PASSWD.splitlines()))
        os.chmod(root / "etc/shadow", 0o640)
        (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
        (root / "etc/nsswitch.conf").write_text("hosts: files dns\n")
        for path in [*_walk(root), root]:
            os.lchown(path, 0, 0) if os.geteuid() == 0 else None
        # The binary's mtime is the package's build time: same package, same image id.
        epoch = int(BUSYBOX.stat().st_mtime)
        clamp_mtimes(root, epoch)
        log(f"busybox: {len(applets)} applets from {BUSYBOX}")
        config = ContainerConfig(env=(PATH_ENV,), cmd=("sh",))
        return _image_from_dir(store, root, ref, config, epoch,
                               f"busybox-static from {BUSYBOX}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- debian ---------------------------------------------------------------------------------


def _release_epoch(rootfs: Path, suite: str) -> int | None:
    lists = rootfs / "var/lib/apt/lists"
    candidates = sorted(lists.glob(f"*_dists_{suite}_InRelease")) + \
        sorted(lists.glob(f"*_dists_{suite}_Release"))
    for path in candidates:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Date:"):
                parsed = email.utils.parsedate_tz(line.partition(":")[2].strip())
                if parsed is not None:
                    return int(calendar.timegm(parsed[:9])) - int(parsed[9] or 0)
    return None


def _slimify(rootfs: Path) -> int:
    """Delete what the slim dpkg excludes would have kept out; returns files removed."""
    rules = []
    for line in SLIM_DPKG.splitlines():
        if line.startswith(("path-exclude ", "path-include ")):
            kind, _, pattern = line.partition(" ")
            rules.append((kind, pattern.strip()))
    removed = 0
    for top in ("usr/share/doc", "usr/share/man", "usr/share/groff", "usr/share/info",
                "usr/share/lintian", "usr/share/linda", "usr/share/locale"):
        base = rootfs / top
        if not base.exists():
            continue
        for path in sorted(_walk(base), reverse=True):
            rel = "/" + str(path.relative_to(rootfs))
            excluded = False
            for kind, pattern in rules:
                if fnmatch.fnmatchcase(rel, pattern):
                    excluded = kind == "path-exclude"
            if path.is_dir() and not path.is_symlink():
                if excluded and not any(path.iterdir()):
                    path.rmdir()
                continue
            if excluded:
                path.unlink()
                removed += 1
    return removed


def _fix_shadow(rootfs: Path, epoch: int) -> None:
    days = str(epoch // 86400)
    for name in ("etc/shadow", "etc/shadow-"):
        path = rootfs / name
        if not path.is_file():
            continue
        lines = []
        for line in path.read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2]:
                fields[2] = days
            lines.append(":".join(fields))
        path.write_text("\n".join(lines) + "\n")


def bootstrap_debian(store: ImageStore, suite: str, *, slim: bool = False,
                     ref: str | None = None, mirror: str | None = None,
                     log: Log = lambda _line: None,
                     source_date_epoch: int | None = None) -> Image:
    """A Debian base image made with ``debootstrap --variant=minbase``."""
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if os.path.exists("/usr/sbin/debootstrap") else None)
    if debootstrap is None:
        raise ImageError("cannot bootstrap debian: debootstrap is not installed "
                         "(apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise ImageError("cannot bootstrap debian: debootstrap needs root")
    host_mirror, security = host_debian_mirror()
    mirror = (mirror or host_mirror).rstrip("/")
    ref = ref or f"debian:{suite}{'-slim' if slim else ''}"
    work = _workdir(store)
    try:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        if slim:
            cfg = rootfs / "etc/dpkg/dpkg.cfg.d"
            cfg.mkdir(parents=True)
            (cfg / "docker").write_text(SLIM_DPKG)
        cmd = [debootstrap, "--variant=minbase", f"--arch={dpkg_architecture()}",
               "--components=main", suite, str(rootfs), mirror]
        log(f"$ {' '.join(cmd)}")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
               "LANG": "C.UTF-8"}
        tail: list[str] = []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip()
                tail = (tail + [line])[-20:]
                if line.startswith("I: ") and not _PER_PACKAGE.match(line):
                    log(line)  # the stage lines, not one per package
        if proc.returncode != 0:
            raise ImageError(f"debootstrap {suite} from {mirror} failed (exit "
                             f"{proc.returncode}):\n" + "\n".join(tail))
        epoch = source_date_epoch or _release_epoch(rootfs, suite)
        if epoch is None:
            raise ImageError(f"debootstrap {suite}: no Release date found to fix the "
                             "image's timestamps; pass SOURCE_DATE_EPOCH")
        _configure_debian(rootfs, suite, mirror, security, slim)
        if slim:
            log(f"slim: removed {_slimify(rootfs)} documentation and locale files")
        _clean_volatile(rootfs, epoch)
        clamp_mtimes(rootfs, epoch)
        log(f"SOURCE_DATE_EPOCH={epoch}; writing the layer")
        config = ContainerConfig(env=(PATH_ENV,), cmd=("bash",))
        image = _image_from_dir(
            store, rootfs, ref, config, epoch,
            f"debootstrap --variant=minbase {suite} {mirror}{' (slim)' if slim else ''}")
        log(f"{ref}: layer {image.config.diff_ids[0]}")
        return image
    finally:
        _unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)


def _configure_debian(rootfs: Path, suite: str, mirror: str, security: str, slim: bool) -> None:
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    suites = f"{suite} {suite}-updates" if suite not in ("sid", "unstable") else suite
    text = (f"Types: deb\nURIs: {mirror}\nSuites: {suites}\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    if suite not in ("sid", "unstable"):
        text += (f"\nTypes: deb\nURIs: {security}\nSuites: {suite}-security\n"
                 "Components: main\n"
                 "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    sources = rootfs / "etc/apt/sources.list.d"
    sources.mkdir(parents=True, exist_ok=True)
    (sources / "debian.sources").write_text(text)
    conf = rootfs / "etc/apt/apt.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    for name, content in APT_CONF.items():
        (conf / name).write_text(content)


def _clean_volatile(rootfs: Path, epoch: int) -> None:
    for rel in VOLATILE:
        path = rootfs / rel
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                _rm(child)
        elif path.exists() or path.is_symlink():
            _rm(path)
    for rel in _KEEP_DIRS:
        (rootfs / rel).mkdir(parents=True, exist_ok=True)
    for rel in ("tmp", "run", "dev"):
        path = rootfs / rel
        if path.is_dir():
            for child in path.iterdir():
                _rm(child)
    (rootfs / "etc/machine-id").write_text("")  # systemd's "not set yet", as official images
    _fix_shadow(rootfs, epoch)


def _unmount_below(path: Path) -> None:
    """debootstrap mounts /proc and /sys in the target; an interrupted run may leave them."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    prefix = str(path) + "/"
    targets = sorted((line.split()[4] for line in mounts if line.split()[4].startswith(prefix)),
                     key=len, reverse=True)
    for target in targets:
        subprocess.run(["umount", "-l", target], capture_output=True)
