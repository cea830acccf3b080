"""The container runtime: image store, rootfs, namespaces, cgroups, spawn, exec, logs.

A library: no CLI knowledge, no printing, no knowledge of Compose. Takes plain
specs (dataclasses) and returns handles. Imports nothing else of pycompose.
"""
