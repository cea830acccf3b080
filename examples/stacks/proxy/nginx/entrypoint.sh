#!/bin/sh
# nginx looks names up itself, through the `resolver` it is given: point it at the
# stack's embedded DNS (the container's nameserver), so that /api/ follows the
# backend's replicas as they come and go.
set -eu
ns=$(sed -n 's/^nameserver[[:space:]]*\([0-9.]*\).*/\1/p' /etc/resolv.conf | head -n 1)
echo "resolver ${ns:-127.0.0.11} valid=2s ipv6=off;" > /etc/nginx/resolver.conf
exec "$@"
