#!/usr/bin/env bash
# Compile-only CI for the CUDA sources (called by `npm run test:native`): configures build/cuda-compile
# with CUDA, builds medgym_cuda and medgym_cuda_check, then runs the check through ctest. On a machine
# without a GPU the check exits 77 and ctest reports it as skipped ("not run", with the reason printed
# by the checker), never as passed. Skipped with a message when nvcc is absent.
# MEDGYM_CUDA_ARCHS overrides the architectures (default "80;90").
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc > /dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "CUDA compile check skipped: nvcc not found"
  exit 0
fi
archs="${MEDGYM_CUDA_ARCHS:-80;90}"
start=$(date +%s)
gen=()
if command -v ninja > /dev/null 2>&1; then gen=(-G Ninja); fi
mkdir -p build
log=build/cuda-compile.configure.log
cmake -S . -B build/cuda-compile "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CUDA_ARCHITECTURES=${archs}" \
  -DMEDGYM_CUDA_CHECK=ON > "$log" 2>&1 || { cat "$log"; exit 1; }
cmake --build build/cuda-compile -j "${MEDGYM_BUILD_JOBS:-2}" --target medgym_cuda_check
echo "CUDA sources built for sm_${archs//;/, sm_} (up to date) in $(( $(date +%s) - start )) s"
# -V: the checker's own lines ("CUDA checks not run: <reason>", or its table on a GPU machine).
ctest --test-dir build/cuda-compile -V 2>&1 |
  grep -v -E '^(UpdateCTestConfiguration|Parse Config|Updating test list|Constructing a list|Done constructing|Added [0-9]+ tests|Checking test dependency|Test project|Internal ctest|test [0-9]+$|[0-9]+: (Working Directory|Test timeout))|^$'
