"""Masked and read-only paths, and ``security_opt`` parsing, as Docker does them.

After /proc (and /sys) are mounted in the container's root, the spawner calls
:func:`apply_paths`: files in :data:`MASKED_PATHS` get ``/dev/null`` bound
over them, directories an empty read-only tmpfs, so the container cannot read
kernel memory, keys or timers of the host; :data:`READONLY_PATHS` are bound
onto themselves and remounted read-only, so ``/proc/sys`` and friends can be
read but not written. Paths the kernel does not have are skipped. Nothing of
this applies to ``privileged`` containers, nor with
``security_opt: systempaths=unconfined``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass

from . import syscalls
from .errors import MountError, SecurityError

#: Hidden from containers (Docker's list).
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

#: Readable but not writable in containers (Docker's list).
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# statvfs f_flag bits → the mount flags a read-only remount must keep.
_KEEP_FLAGS = ((os.ST_NOSUID, syscalls.MS_NOSUID), (os.ST_NODEV, syscalls.MS_NODEV),
               (os.ST_NOEXEC, syscalls.MS_NOEXEC), (os.ST_NOATIME, syscalls.MS_NOATIME),
               (os.ST_NODIRATIME, syscalls.MS_NODIRATIME),
               (os.ST_RELATIME, syscalls.MS_RELATIME))


def paths_for(privileged: bool, unmask_system_paths: bool = False,
              ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(masked, readonly)`` for a container: both empty when privileged or unmasked."""
    if privileged or unmask_system_paths:
        return (), ()
    return MASKED_PATHS, READONLY_PATHS


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/")) if root not in ("", "/") else path


def mask_path(target: str, null_device: str = "/dev/null") -> bool:
    """Hide ``target``: /dev/null over a file, an empty read-only tmpfs over a directory.

    ``False`` when ``target`` does not exist (nothing to hide).
    """
    try:
        is_dir = os.path.isdir(target) and not os.path.islink(target)
        if is_dir:
            syscalls.mount("tmpfs", target, "tmpfs", syscalls.MS_RDONLY)
        else:
            syscalls.mount(null_device, target, None, syscalls.MS_BIND)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise MountError(f"mask {target}: {exc.strerror}") from exc
    return True


def readonly_path(target: str) -> bool:
    """Bind ``target`` onto itself and remount it read-only (keeping nosuid/nodev/noexec).

    ``False`` when ``target`` does not exist.
    """
    try:
        syscalls.mount(target, target, None, syscalls.MS_BIND | syscalls.MS_REC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise MountError(f"bind {target} onto itself: {exc.strerror}") from exc
    try:
        flags = os.statvfs(target).f_flag
        keep = 0
        for st_flag, ms_flag in _KEEP_FLAGS:
            if flags & st_flag:
                keep |= ms_flag
        syscalls.mount(target, target, None, syscalls.MS_BIND | syscalls.MS_REMOUNT
                       | syscalls.MS_RDONLY | keep)
    except OSError as exc:
        raise MountError(f"remount {target} read-only: {exc.strerror}") from exc
    return True


def apply_paths(root: str = "/", masked: Iterable[str] = MASKED_PATHS,
                readonly: Iterable[str] = READONLY_PATHS,
                null_device: str = "/dev/null") -> None:
    """Mask and make read-only the given paths below ``root`` (after /proc is mounted).

    The spawner calls it after pivot_root with the defaults (``root="/"``),
    or before with ``root`` = the container's rootfs; pass ``paths_for(...)``
    to honour ``privileged``. Read-only paths go first so that a masked path
    inside one (none by default) still gets its own mount.
    """
    for path in readonly:
        readonly_path(_inside(root, path))
    for path in masked:
        mask_path(_inside(root, path), null_device)


# -- security_opt ----------------------------------------------------------------------


@dataclass(frozen=True)
class SecurityOptions:
    """What ``security_opt`` asked for.

    ``seccomp`` is ``default``, ``unconfined`` or the path of a JSON profile
    (see :func:`pycompose.runtime.seccomp.resolve_profile`). ``warnings`` lists
    accepted options that pycompose does not enforce (AppArmor, SELinux labels).
    """

    no_new_privileges: bool = False
    seccomp: str = "default"
    unmask_system_paths: bool = False
    warnings: tuple[str, ...] = ()


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_security_opts(opts: Iterable[str]) -> SecurityOptions:
    """Parse Compose/Docker ``security_opt`` entries (``key=value``, or ``key:value``).

    Accepted: ``no-new-privileges[=|:true|false]``, ``seccomp=unconfined|<file>``,
    ``systempaths=unconfined``; ``apparmor=…``, ``label=…`` and
    ``writable-cgroups=…`` are accepted with a warning. Anything else is a
    :class:`~pycompose.runtime.errors.SecurityError` naming the entry.
    """
    nnp = False
    seccomp = "default"
    unmask = False
    warnings: list[str] = []
    for raw in opts:
        opt = raw.strip()
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        key = key.strip().lower()
        value = value.strip()
        if key == "no-new-privileges":
            if not sep or value.lower() in _TRUE:
                nnp = True
            elif value.lower() in _FALSE:
                nnp = False
            else:
                raise SecurityError(f"security_opt {raw!r}: no-new-privileges takes true or "
                                    f"false, not {value!r}")
        elif key == "seccomp":
            if not value:
                raise SecurityError(f"security_opt {raw!r}: seccomp needs 'unconfined' or "
                                    "the path of a profile")
            seccomp = value
        elif key == "systempaths":
            if value != "unconfined":
                raise SecurityError(f"security_opt {raw!r}: systempaths takes only "
                                    "'unconfined'")
            unmask = True
        elif key in ("apparmor", "label", "writable-cgroups"):
            warnings.append(f"security_opt {raw!r} is accepted but not enforced: "
                            f"pycompose does not support {key}")
        else:
            raise SecurityError(f"security_opt {raw!r}: unknown option {key!r} (expected "
                                "no-new-privileges, seccomp, systempaths, apparmor or label)")
    return SecurityOptions(no_new_privileges=nnp, seccomp=seccomp, unmask_system_paths=unmask,
                           warnings=tuple(warnings))
