"""Errors raised while loading, validating and scheduling a Compose project.

::

    ComposeError                      anything the compose layer reports
    ├── ComposeFileError              a problem at a place in a file: (file, path, message)
    │   ├── YamlError                 not valid YAML, a repeated key, recursive aliases
    │   ├── InterpolationError        bad ${...} syntax, or ${VAR?err} with VAR unset
    │   ├── SchemaError               unknown key, wrong type, bad value
    │   ├── MergeError                files or extends that cannot be combined
    │   ├── EnvFileError              a .env / env_file that is missing, unreadable or malformed
    │   └── DependencyCycleError      depends_on / links / service: references form a cycle
    ├── ComposeFileErrors             several ComposeFileError found in one pass (all are listed)
    ├── ProjectNotFoundError          no compose file given and none found by lookup
    └── SchedulerError                a service failed to converge (later)

Messages are deterministic (keys sorted before walking) and read
``compose.yaml: services.web.ports[1]: invalid port "80:abc"``.
"""

from __future__ import annotations

from collections.abc import Sequence


class ComposeError(Exception):
    """Root of every error the compose layer raises on purpose."""


class ComposeFileError(ComposeError):
    """A problem located in a file at a key path (``services.web.ports[1]``)."""

    def __init__(self, file: str | None, path: str | None, message: str) -> None:
        self.file = file
        self.path = path
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = [part for part in (self.file, self.path) if part]
        return ": ".join([*where, self.message])


class YamlError(ComposeFileError):
    """The file is not valid YAML, repeats a key, or has recursive or exploding aliases."""


class InterpolationError(ComposeFileError):
    """Invalid ``${...}`` syntax, or a required variable (``${VAR?msg}``) is unset."""


class SchemaError(ComposeFileError):
    """An unknown key, a value of the wrong type, or a value out of range."""


class MergeError(ComposeFileError):
    """Files, ``extends`` or ``include`` that cannot be combined."""


class EnvFileError(ComposeFileError):
    """A ``.env`` / ``env_file`` that is missing (when required), unreadable or malformed."""


class DependencyCycleError(ComposeFileError):
    """Services depend on each other in a cycle; the message prints it as ``a -> b -> a``."""


class ComposeFileErrors(ComposeError):
    """Every error found in one validation pass, sorted, one per line."""

    def __init__(self, errors: Sequence[ComposeFileError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} problems found:\n{lines}")


class ProjectNotFoundError(ComposeError):
    """No compose file was given and none was found in the directory or its parents."""


class SchedulerError(ComposeError):
    """A service could not be brought to its desired state."""
