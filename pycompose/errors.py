"""Errors of the engine and CLI, and the set of errors shown to users without a traceback.

::

    PycomposeError                engine and CLI errors
    ├── UsageError                bad command-line arguments
    ├── EngineError               the engine could not be reached or refused a request
    └── NotRootError              the command needs root

    compose.errors.ComposeError           (see compose/errors.py)
    runtime.errors.ContainerRuntimeError  (see runtime/errors.py)
    network.errors.NetworkError           (see network/errors.py)

The libraries import nothing of ours, so their roots are separate classes;
``user_errors()`` names all four, and the CLI prints any of them as a one-line
message (the traceback only with ``--debug`` or ``PYCOMPOSE_DEBUG=1``). It imports
the libraries' error modules when asked: a command that talks to the engine never
needs them, and their packages cost its start about a millisecond.
"""

from __future__ import annotations


class PycomposeError(Exception):
    """Root of the engine's and the CLI's own errors."""


class UsageError(PycomposeError):
    """The command line asks for something that cannot be done."""


class EngineError(PycomposeError):
    """The engine could not be reached, or refused a request."""


class NotRootError(PycomposeError):
    """The command needs root privileges."""


def user_errors() -> tuple[type[Exception], ...]:
    """The errors printed as a message, not as a bug."""
    from pycompose.compose.errors import ComposeError
    from pycompose.network.errors import NetworkError
    from pycompose.runtime.errors import ContainerRuntimeError

    return (PycomposeError, ComposeError, ContainerRuntimeError, NetworkError)
