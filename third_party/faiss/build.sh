#!/usr/bin/env bash
# Builds FAISS's C API as a static library, build/faiss/lib/libfaiss_c.a.
#
# Debian ships libfaiss.a and the C API headers but not the C API library, so
# this fetches Debian's own faiss source package (the version matching the
# installed libfaiss-dev), compiles only its c_api/ sources against the
# installed headers, and adds re2g's small C++ shim (re2g_faiss.cpp, for the
# HNSW parts the 1.7.3 C API lacks) to the same archive.
# Idempotent: does nothing when the library exists.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/build/faiss"
LIB="$OUT/lib/libfaiss_c.a"
HERE="$ROOT/third_party/faiss"
CXX="${CXX:-g++}"
JOBS="${JOBS:-2}"
CXXFLAGS=(-O3 -fPIC -std=c++17 -fopenmp -DNDEBUG -Wno-deprecated-declarations)

if [ -f "$LIB" ]; then
  exit 0
fi

ver="$(dpkg-query -W -f='${source:Version}' libfaiss-dev 2>/dev/null || true)"
if [ -z "$ver" ]; then
  echo "faiss: libfaiss-dev is not installed (run: make deps)" >&2
  exit 1
fi

SRC="$OUT/src"
srcdir="$(find "$SRC" -maxdepth 1 -type d -name 'faiss-*' 2>/dev/null | head -n1 || true)"
if [ -z "$srcdir" ] || [ ! -d "$srcdir/c_api" ]; then
  rm -rf "$SRC"
  mkdir -p "$SRC"
  echo "faiss: fetching Debian source package faiss=$ver"
  (cd "$SRC" && apt-get source -qq "faiss=$ver" >/dev/null 2>"$SRC/apt.log") || {
    cat "$SRC/apt.log" >&2
    echo "faiss: apt-get source failed (deb-src entries enabled? run: make deps)" >&2
    exit 1
  }
  srcdir="$(find "$SRC" -maxdepth 1 -type d -name 'faiss-*' | head -n1)"
fi

OBJ="$OUT/obj"
rm -rf "$OBJ"
mkdir -p "$OBJ" "$OUT/lib"

# The C API sources: everything under c_api/ except the GPU part and example.
mapfile -t srcs < <(cd "$srcdir/c_api" && find . -name '*.cpp' -not -path './gpu/*' | sort)
echo "faiss: compiling ${#srcs[@]} C API sources from $(basename "$srcdir") + re2g shim"

pids=()
i=0
for s in "${srcs[@]}"; do
  o="$OBJ/$(echo "${s#./}" | tr '/' '_' | sed 's/\.cpp$/.o/')"
  # Headers: c_api's own (relative includes) and Debian's installed <faiss/...>.
  "$CXX" "${CXXFLAGS[@]}" -c "$srcdir/c_api/${s#./}" -o "$o" &
  pids+=($!)
  i=$((i + 1))
  if [ $((i % JOBS)) = 0 ]; then
    for p in "${pids[@]}"; do wait "$p"; done
    pids=()
  fi
done
"$CXX" "${CXXFLAGS[@]}" -I"$HERE" -c "$HERE/re2g_faiss.cpp" -o "$OBJ/re2g_faiss.o" &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done

tmp="$LIB.tmp.$$"
ar rcs "$tmp" "$OBJ"/*.o
mv "$tmp" "$LIB"
echo "faiss: built $LIB"
