#!/usr/bin/env bash
# Installs the Debian packages re2g builds and tests against. Idempotent: it
# installs only what is missing, and enables deb-src (needed to build FAISS's
# C API from Debian's own faiss source package) only if no entry exists.
set -euo pipefail

PKGS=(
  g++ make pkg-config dpkg-dev
  libtorch-dev libgloo-dev libopenblas0-pthread
  libfaiss-dev libomp-dev
  python3-faiss python3-torch python3-xapian python3-numpy python3-matplotlib
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

need_src=0
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  need_src=1
  echo "install-deps: enabling deb-src entries for Debian's archive"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
  done
  if [ -f /etc/apt/sources.list ] && grep -qE '^deb ' /etc/apt/sources.list; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | $SUDO tee /etc/apt/sources.list.d/re2g-src.list >/dev/null
  fi
fi

if [ ${#missing[@]} -gt 0 ] || [ $need_src = 1 ]; then
  echo "install-deps: apt-get install ${missing[*]:-}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "install-deps: all packages present"
fi
