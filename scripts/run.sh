#!/usr/bin/env bash
# One command from a fresh machine to the main job: install, build, train.
# Arguments go to zae-train (default: the demo that trains an MLP with the autograd core).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
if [ $# -eq 0 ]; then set -- demo; fi
"${BUILD_DIR:-build}"/apps/zae-train "$@"
