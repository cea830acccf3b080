"""Dockerfile builds on pycompose's own runtime.

::

    from pycompose.runtime.build import Builder, BuildOptions

    builder = Builder(store, state_root, instance=instance, log=print,
                      registry_config=RegistryConfig.load(state_root, os.environ))
    image = await builder.build(BuildOptions(context=Path("api"), tags=("api:1",),
                                             build_args={"VERSION": "2"}, no_cache=False))

Modules: ``dockerfile`` (parser, variable substitution), ``context``
(``.dockerignore``, globs, content hashes, copying), ``builder`` (stages,
cache, RUN containers, COPY/ADD layers), ``copying`` (COPY/ADD helpers),
``run_mounts`` (``RUN --mount``), ``ssh`` (SSH agents for ssh mounts), ``remote``
(``ADD <url>``), ``errors``.
"""

from __future__ import annotations

from pycompose.runtime.build.builder import Builder, BuildOptions
from pycompose.runtime.build.errors import BuildError, BuildStepError, DockerfileError

__all__ = ["BuildError", "BuildOptions", "BuildStepError", "Builder", "DockerfileError"]
