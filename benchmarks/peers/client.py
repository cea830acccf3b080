"""The command-line side shared by the docker and podman peers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class PeerCLI:
    """Runs ``program`` with the peer's private environment (``self.env``)."""

    program: str
    env: dict[str, str]

    def cli(self, *args: str, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, **self.env)
        proc = subprocess.run([self.program, *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            name = os.path.basename(self.program)
            raise RuntimeError(f"{name} {' '.join(args)}: {proc.stderr.strip()[-300:]}")
        return proc

    def import_rootfs(self, tar: Path, ref: str) -> None:
        self.cli("import", str(tar), ref)

    def running(self, label: str) -> int:
        """How many containers with ``label`` (key=value) are running."""
        out = self.cli("ps", "-q", "--filter", f"label={label}", "--filter", "status=running")
        return len(out.stdout.split())
