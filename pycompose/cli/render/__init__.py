"""Rendering of engine streams for people (rich on a TTY, plain text otherwise) or
programs (``--progress json``). The engine and ``compose/`` only emit events."""
