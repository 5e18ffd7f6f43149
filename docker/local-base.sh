#!/usr/bin/env bash
# Build a Python 3.11 base image from Debian packages, for hosts that cannot
# reach a public image registry: mmdebstrap writes a minimal Debian bookworm
# root file system (with python3, python3-venv and ca-certificates) to a tar
# stream, and `docker import` turns it into an image. The Debian mirror is the
# host's own apt source.
#
#   docker/local-base.sh [TAG]        default TAG: genofed/base:bookworm-local
#
# Prints the tag; pass it to the image builds as --build-arg BASE_IMAGE=TAG.
set -euo pipefail

tag="${1:-genofed/base:bookworm-local}"
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$( { grep -hs '^URIs:' /etc/apt/sources.list.d/debian.sources || true; \
               grep -hs '^deb ' /etc/apt/sources.list || true; } | grep -v security | head -n1 | awk '{print $2}')"
fi
mirror="${mirror:-http://deb.debian.org/debian}"
command -v mmdebstrap >/dev/null || { echo "error: mmdebstrap is missing; run: apt-get install -y mmdebstrap" >&2; exit 1; }
echo "building $tag from $mirror (mmdebstrap bookworm, minbase)" >&2
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm - "$mirror" \
  | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "$tag"
