"""Maps the top-level folders onto one installed package, ``pycompose``.

``compose/``, ``runtime/`` and ``network/`` live at the top of the repository
(the layout shows the architecture) but install as ``pycompose.compose``,
``pycompose.runtime`` and ``pycompose.network``, so the distribution claims
only the import name ``pycompose``. Subpackages are discovered, not listed.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "pycompose": "pycompose",
    "pycompose.compose": "compose",
    "pycompose.runtime": "runtime",
    "pycompose.network": "network",
}

packages: list[str] = []
for package, folder in FOLDERS.items():
    packages.append(package)
    packages.extend(f"{package}.{sub}" for sub in find_packages(folder))

setup(
    packages=packages,
    package_dir=FOLDERS,
    package_data={package: ["py.typed"] for package in FOLDERS},
)
