#!/usr/bin/env bash
# One command from a fresh machine to passing tests: install, build, run ctest.
# GPU tests (label gpu) skip themselves where no CUDA device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh "$@"
ctest --test-dir "${BUILD_DIR:-build}" -j "$(nproc)" --output-on-failure
