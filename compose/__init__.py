"""Compose files to a validated, immutable Project model; the dependency graph; the scheduler.

Knows Compose and nothing about syscalls. Imports nothing else of pycompose.
"""
