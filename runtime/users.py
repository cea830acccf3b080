"""Resolve ``user`` / ``group_add`` in the container's own /etc/passwd and /etc/group.

Runs in the spawn child before pivot_root, with the container's root still a
plain directory: the files are opened through :func:`rootfs.secure_join`, so a
symlinked ``/etc/passwd`` resolves inside the container root, never on the host.
Rules are Docker's: ``uid[:gid]`` numbers need no entry; names must exist;
the user's supplementary groups are the groups listing it, unless a
group is given explicitly; a numeric uid
with no entry runs with gid 0 unless a gid is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycompose.runtime.errors import SpawnError
from pycompose.runtime.rootfs import secure_join


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]  #: supplementary groups
    home: str


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    try:
        with open(secure_join(rootfs, name), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SpawnError(f"read {name} in the container: {exc.strerror}") from None
    rows = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def resolve_user(rootfs: str, user: str, group_add: tuple[str, ...] = ()) -> ResolvedUser:
    """Turn ``user`` (``""``, ``name``, ``uid``, ``name:group``, ``uid:gid``) into ids."""
    passwd = _read_db(rootfs, "/etc/passwd")
    groups = _read_db(rootfs, "/etc/group")
    uspec, _, gspec = (user or "0").partition(":")
    entry: list[str] | None = None
    for row in passwd:
        if len(row) >= 7 and (row[0] == uspec or (uspec.isdigit() and row[2] == uspec)):
            entry = row
            break
    if entry is not None:
        uid, gid, home, uname = int(entry[2]), int(entry[3]), entry[5], entry[0]
    elif uspec.isdigit():
        uid, gid, home, uname = int(uspec), 0, "/", ""
    else:
        raise SpawnError(f'unable to find user {uspec}: no matching entries in passwd file')
    if gspec:
        gid = _group_id(groups, gspec)
    supplementary: list[int] = []
    if uname and not gspec:  # an explicit group replaces the user's own groups (runc)
        for row in groups:
            if len(row) >= 4 and uname in row[3].split(","):
                supplementary.append(int(row[2]))
    for extra in group_add:
        supplementary.append(_group_id(groups, extra))
    seen: list[int] = []
    for g in [gid, *supplementary]:
        if g not in seen:
            seen.append(g)
    return ResolvedUser(uid=uid, gid=gid, groups=tuple(seen), home=home or "/")


def _group_id(groups: list[list[str]], spec: str) -> int:
    for row in groups:
        if len(row) >= 3 and (row[0] == spec or (spec.isdigit() and row[2] == spec)):
            return int(row[2])
    if spec.isdigit():
        return int(spec)
    raise SpawnError(f"unable to find group {spec}: no matching entries in group file")
