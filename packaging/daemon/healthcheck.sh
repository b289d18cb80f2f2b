#!/bin/sh
# The daemon image's HEALTHCHECK: `anyi2v status` on the daemon's own port, with the `health` key pair
# when the keys folder holds one (the daemon lets in only authorized keys when it serves the network).
set -eu
keys="${ANYI2V_KEYS:-/keys}"
address="tcp://127.0.0.1:${ANYI2V_PORT:-5557}"
if [ -f "$keys/health.key_secret" ] && [ -f "$keys/server.key" ]; then
    exec anyi2v status --daemon "$address" --timeout 15 \
        --server-key "$keys/server.key" --client-key "$keys/health.key_secret" >/dev/null
fi
exec anyi2v status --daemon "$address" --timeout 15 >/dev/null
