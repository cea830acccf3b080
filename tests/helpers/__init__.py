"""Shared test helpers: test images built from Debian's busybox-static, host-object naming."""
