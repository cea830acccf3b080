"""Small real images made at test time from Debian's ``busybox-static`` (never committed).

``make_busybox_rootfs(dir)`` lays out a minimal root filesystem: the static
busybox binary, one symlink per applet, ``/etc/passwd`` and ``/etc/group`` with
root, nobody and a uid 1000 user. ``make_rootfs_tar`` packs it as a rootfs
tarball (the input of ``pycompose image import``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
app:x:1000:
extra:x:2000:app
nogroup:x:65534:
"""


def busybox_available() -> bool:
    """True when the static busybox binary is installed (Debian ``busybox-static``)."""
    if not BUSYBOX.exists():
        return False
    out = subprocess.run(["file", "-L", str(BUSYBOX)], capture_output=True, text=True)
    return out.returncode != 0 or "dynamically" not in out.stdout


def busybox_applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def make_busybox_rootfs(root: Path) -> Path:
    """Create a busybox root filesystem in ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "home/app",
              "proc", "sys", "dev", "var/log", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in busybox_applets():
        target = root / applet
        if target.exists() or target.is_symlink() or applet == "bin/busybox":
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to("/bin/busybox")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    os.chown(root / "home" / "app", 1000, 1000) if os.geteuid() == 0 else None
    return root


def make_rootfs_tar(root: Path, tar_path: Path) -> Path:
    """Pack ``root`` as an uncompressed rootfs tarball with numeric owners."""
    with tarfile.open(tar_path, "w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name)
    return tar_path
