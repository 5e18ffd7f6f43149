#!/bin/sh
# Allow every site's node key to connect to the running coordinator, idempotently:
# `genofed coordinator register-site SITE NODES_DIR/SITE.pub` for each *.pub file; a key
# the coordinator already knows (its state volume survived a restart) counts as registered.
#
#   register_sites.sh [COORDINATOR_TOML [NODES_DIR]]
#   defaults: /etc/genofed/coordinator.toml /etc/genofed/nodes
#
# Runs where the Control API is reachable (in compose: the coordinator's network namespace).
set -u
config="${1:-/etc/genofed/coordinator.toml}"
nodes="${2:-/etc/genofed/nodes}"
found=0
for pub in "$nodes"/*.pub; do
  [ -f "$pub" ] || continue
  found=1
  site="$(basename "$pub" .pub)"
  if out="$(genofed coordinator register-site "$site" "$pub" --config "$config" 2>&1)"; then
    printf '%s\n' "$out"
  elif printf '%s' "$out" | grep -q "already in use"; then
    echo "site $site: node key already registered"
  else
    printf '%s\n' "$out" >&2
    echo "error: registering site $site failed" >&2
    exit 1
  fi
done
[ "$found" = 1 ] || { echo "error: no node public keys (*.pub) in $nodes" >&2; exit 1; }
