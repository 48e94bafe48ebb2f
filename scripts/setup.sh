#!/usr/bin/env bash
# Installs everything the build and the tests need from Debian's packages, and the
# Python reference packages the interop tests use (pip, for the python3 on PATH).
# Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libeigen3-dev libopenblas-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev dataset-fashion-mnist
  clang libclang-rt-14-dev libomp-dev
  libgloo-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# Hugging Face's reference safetensors (+ numpy) for tests/interop; the test skips,
# loudly, where it cannot be imported.
if command -v python3 > /dev/null; then
  if python3 -c 'import safetensors, numpy' 2> /dev/null; then
    echo "setup: python3 has safetensors and numpy"
  else
    echo "setup: pip installing safetensors numpy for $(command -v python3)"
    # Debian's own python3 refuses pip (PEP 668) unless told: a test-only package is fine there.
    python3 -m pip install --quiet safetensors numpy 2> /dev/null ||
      python3 -m pip install --quiet --break-system-packages safetensors numpy ||
      echo "setup: WARNING: pip install safetensors numpy failed; the safetensors interop test will skip"
  fi
else
  echo "setup: WARNING: no python3 on PATH; the safetensors interop test will skip"
fi
