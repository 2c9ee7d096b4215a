#!/usr/bin/env bash
# Build (once) and print the path of a llama-cpp-python wheel compiled for portable AVX2.
#
# The default native build enables AMX on CPUs that advertise it but fault on it, so the
# flags are pinned here. The wheel is kept outside the checkout, keyed by version and a
# hash of the flags, so every virtual environment (and a fresh CI clone) reuses it.
# pip's own wheel cache is bypassed: a crashing build must never be picked up silently.
set -euo pipefail

PY="${1:-python3}"
VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
KEY="$(printf '%s|%s' "$VERSION" "$FLAGS" | sha256sum | cut -c1-12)"
CACHE="${GENAIOPS_WHEEL_CACHE:-$HOME/.cache/genaiops/wheels}/llama-cpp-python-$VERSION-$KEY"

wheel="$(ls "$CACHE"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $VERSION with portable AVX2 flags (takes a few minutes)" >&2
  tmp="$(mktemp -d)"
  CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PY" -m pip wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -w "$tmp" >&2
  mkdir -p "$CACHE"
  # Move atomically so an interrupted build never leaves a half-written wheel in the cache.
  built="$(ls "$tmp"/llama_cpp_python-*.whl)"
  mv "$built" "$CACHE/.partial" && mv "$CACHE/.partial" "$CACHE/$(basename "$built")"
  rm -rf "$tmp"
  wheel="$(ls "$CACHE"/llama_cpp_python-*.whl | head -n1)"
fi
echo "$wheel"
