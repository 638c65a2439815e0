#!/usr/bin/env bash
# Runs `make test` against newer libtorch releases than bookworm's 1.13: in a
# Debian chroot (trixie: libtorch 2.6, g++ 14; sid: libtorch 2.x, g++ 16,
# C++20 headers) built with debootstrap, from a clean copy of the committed
# tree, with this machine's Go toolchain and module cache bind-mounted.
#
#   sudo scripts/libtorch_matrix.sh [SUITE ...]    # default: trixie sid
#
# FAISS stays at bookworm's 1.7.3 (libfaiss-dev .deb and the C API built here)
# because the FAISS C API is built from Debian's source package and the
# suites' own faiss sources may not be mirrored; libtorch is the variable.
# Needs root, debootstrap and ~3 GB per suite under $CHROOTS (/tmp/re2g-chroots).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHROOTS=${CHROOTS:-/tmp/re2g-chroots}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=(trixie sid)
[ "$(id -u)" = 0 ] || { echo "libtorch_matrix: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
make --no-print-directory build/faiss/lib/libfaiss_c.a
faissdeb=$(mktemp -d)
chmod 755 "$faissdeb"
(cd "$faissdeb" && apt-get download -qq libfaiss-dev)
GOROOT=$(go env GOROOT)
GOMODCACHE=$(go env GOMODCACHE)
APT=(apt-get -o Acquire::Check-Valid-Until=false -y -qq --no-install-recommends)
PKGS=(libtorch-dev python3-torch g++ make pkg-config dpkg-dev libomp-dev libopenblas0-pthread
  python3-numpy python3-xapian python3-matplotlib)

results=()
for suite in "${SUITES[@]}"; do
  dir=$CHROOTS/$suite
  if [ ! -x "$dir/usr/bin/apt-get" ]; then
    echo "== $suite: debootstrap"
    debootstrap --variant=minbase "$suite" "$dir" "$MIRROR" >"$CHROOTS/$suite.debootstrap.log" 2>&1
  fi
  cp /etc/resolv.conf "$dir/etc/"
  for m in proc dev; do mountpoint -q "$dir/$m" || mount --bind "/$m" "$dir/$m"; done
  mkdir -p "$dir/opt/go" "$dir/opt/gomod" "$dir/work/shared"
  mountpoint -q "$dir/opt/go" || mount --bind "$GOROOT" "$dir/opt/go"
  mountpoint -q "$dir/opt/gomod" || mount --bind "$GOMODCACHE" "$dir/opt/gomod"
  if [ -d "$ROOT/../shared" ] && ! mountpoint -q "$dir/work/shared"; then mount --bind "$ROOT/../shared" "$dir/work/shared"; fi
  cp "$faissdeb"/libfaiss-dev_*.deb "$dir/tmp/"
  echo "== $suite: packages"
  chroot "$dir" bash -ec "
    export DEBIAN_FRONTEND=noninteractive
    grep -qs deb-src /etc/apt/sources.list.d/re2g-src.list || echo 'deb-src $MIRROR $suite main' >/etc/apt/sources.list.d/re2g-src.list
    dpkg -r --force-depends libfaiss-dev >/dev/null 2>&1 || true  # an earlier run's, so apt sees no broken state
    ${APT[*]} update
    ${APT[*]} install ${PKGS[*]}
    dpkg -i --force-depends /tmp/libfaiss-dev_*.deb >/dev/null 2>&1 || true
    cd /usr/lib/x86_64-linux-gnu
    [ -e libblas.so ] || ln -s libblas.so.3 libblas.so
    [ -e liblapack.so ] || ln -s liblapack.so.3 liblapack.so
  " >"$CHROOTS/$suite.apt.log" 2>&1
  rm -rf "$dir/work/re2g" && mkdir -p "$dir/work/re2g/build/faiss/lib"
  git ls-files -z | tar --null -cf - -T - | tar -xf - -C "$dir/work/re2g"
  cp build/faiss/lib/libfaiss_c.a "$dir/work/re2g/build/faiss/lib/"
  torch=$(chroot "$dir" python3 -c 'import torch; print(torch.__version__)')
  gxx=$(chroot "$dir" g++ -dumpfullversion)
  echo "== $suite: make test (libtorch $torch, g++ $gxx)"
  log=$CHROOTS/$suite.test.log
  start=$(date +%s)
  if chroot "$dir" env PATH=/opt/go/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root GOMODCACHE=/opt/gomod \
    GOCACHE=/root/.cache/go-build GOPROXY=off GOFLAGS=-mod=readonly bash -c 'cd /work/re2g && make test' >"$log" 2>&1; then
    status=pass
  else
    status="FAIL (log: $log)"
  fi
  pkgs=$(grep -cE '^ok ' "$log" || true)
  std=$(grep -om1 -- '-std=c++[0-9]*' "$log" || echo '?')
  results+=("$(printf '| %-7s | %-14s | %-7s | %-10s | %3s | %4ss | %s |' "$suite" "$torch" "$gxx" "$std" "$pkgs" "$(( $(date +%s) - start ))" "$status")")
  tail -3 "$log"
done

echo
echo "| suite   | libtorch       | g++     | shim std   | ok  | time  | make test |"
echo "|---------|----------------|---------|------------|-----|-------|-----------|"
printf '%s\n' "${results[@]}"
