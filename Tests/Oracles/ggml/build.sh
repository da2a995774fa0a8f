#!/bin/sh
# Builds libggmlquants.so beside this script: ggml's reference quantizers (ggml-quants.c from the
# llama.cpp copy in the llama-cpp-python 0.3.36 source distribution, fetched from PyPI) plus
# ggml_stubs.c, compiled without FMA contraction as upstream builds ggml-base on x86-64.
# Used only to regenerate Tests/LatheCoreTests/Fixtures/ggml-reference-quants.json:
#   sh build.sh && python make_golden.py ../../LatheCoreTests/Fixtures/ggml-reference-quants.json
set -e
here=$(cd "$(dirname "$0")" && pwd)
work=${WORK:-$here/.work}
mkdir -p "$work"
[ -f "$work/llama_cpp_python-0.3.36.tar.gz" ] || \
  python3 -m pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d "$work"
[ -d "$work/llama_cpp_python-0.3.36" ] || tar -xzf "$work/llama_cpp_python-0.3.36.tar.gz" -C "$work"
G="$work/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml"
cc -O2 -shared -fPIC -std=gnu11 -ffp-contract=off -DNDEBUG -D_XOPEN_SOURCE=700 -D_GNU_SOURCE \
   -I"$G/include" -I"$G/src" "$G/src/ggml-quants.c" "$here/ggml_stubs.c" -lm -o "$here/libggmlquants.so"
