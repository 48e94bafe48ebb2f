#!/usr/bin/env bash
# One command from a fresh machine to the main job: install, build, train.
# Arguments go to zae-train (default: `fashion-mnist`, an MLP trained with the Trainer on CPU
# or the GPU when one is present; it prints the final test accuracy).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
if [ $# -eq 0 ]; then set -- fashion-mnist; fi
"${BUILD_DIR:-build}"/apps/zae-train "$@"
