"""One installed package, ``pycompose``, with the architecture's folders at the top.

``compose/``, ``runtime/`` and ``network/`` live at the top of the repository (the
layout shows the architecture); ``pycompose/compose``, ``pycompose/runtime`` and
``pycompose/network`` are relative symlinks to them, so the source tree already has
the installed layout (``pycompose.runtime`` and so on) and the distribution claims
only the import name ``pycompose``. Subpackages are discovered through the links.

``package_dir={"": "."}`` makes an editable install (``pip install -e .``) a plain
``.pth`` entry for the repository, where a mapping of folders would need setuptools'
import hook: that hook imports ``pathlib`` and more at every interpreter start, some
4 ms of every ``pycompose`` command.
"""

from setuptools import find_packages, setup

PACKAGES = ("pycompose", "pycompose.compose", "pycompose.runtime", "pycompose.network")

setup(
    packages=find_packages(include=["pycompose", "pycompose.*"]),
    package_dir={"": "."},
    package_data={package: ["py.typed"] for package in PACKAGES},
)
