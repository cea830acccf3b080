"""The ``pycompose`` command line: argument parsing, rendering, talking to the engine."""
