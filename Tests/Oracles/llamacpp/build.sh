#!/bin/sh
# Builds llama.cpp (the copy in the llama-cpp-python 0.3.36 source distribution, fetched from PyPI,
# with CMake and Ninja from their PyPI wheels) and tokenize_many, the harness beside this script.
# Used only to regenerate fixtures and to check Lathe's GGUF output with llama.cpp's own tools:
#   sh build.sh   # prints the directory holding llama-perplexity, llama-tokenize, llama-quantize, tokenize_many
# Takes about ten minutes on two cores. WORK (default: .work beside this script) keeps the build.
set -e
here=$(cd "$(dirname "$0")" && pwd)
work=${WORK:-$here/.work}
mkdir -p "$work"
[ -x "$work/venv/bin/cmake" ] || {
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q cmake ninja
}
[ -f "$work/llama_cpp_python-0.3.36.tar.gz" ] || \
  python3 -m pip download -q --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d "$work"
[ -d "$work/llama_cpp_python-0.3.36" ] || tar -xzf "$work/llama_cpp_python-0.3.36.tar.gz" -C "$work"
src="$work/llama_cpp_python-0.3.36/vendor/llama.cpp"
export PATH="$work/venv/bin:$PATH"
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=ON >"$work/cmake.log"
ninja -C "$work/build" llama-perplexity llama-tokenize llama-quantize >"$work/ninja.log"
c++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" "$here/tokenize_many.cpp" \
  -L"$work/build/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$work/build/bin" -o "$work/build/bin/tokenize_many"
echo "$work/build/bin"
