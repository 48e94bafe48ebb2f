#!/usr/bin/env bash
# One command from a fresh machine to passing tests: install, build, run ctest, then
# a short fuzzing run of the file readers (scripts/fuzz.sh: 60 s safetensors, 30 s
# checkpoint, in build-fuzz with clang; ZAE_SKIP_FUZZ=1 skips it).
# GPU tests (label gpu) skip themselves where no CUDA device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh "$@"
ctest --test-dir "${BUILD_DIR:-build}" -j "$(nproc)" --output-on-failure
if [ "${ZAE_SKIP_FUZZ:-0}" != 1 ]; then
  BUILD_DIR=build-fuzz bash scripts/fuzz.sh
fi
