"""One module per command. Each defines ``add_arguments(parser)`` and ``run(args) -> int``.

Modules are imported only when their command runs, so ``pycompose config``
never pays for trio, pyroute2 or the runtime.
"""
