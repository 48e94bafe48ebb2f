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
  libgloo-dev libcurl4-openssl-dev
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

# Python reference packages for the interop tests (pip, for the python3 on PATH):
# Hugging Face's safetensors (+ numpy), TensorBoard's event reader, and MLflow's tracking
# server. Each test skips, loudly, where its package cannot be imported.
if command -v python3 > /dev/null; then
  missing_py=()
  for pair in safetensors:safetensors numpy:numpy tensorboard:tensorboard mlflow:mlflow; do
    python3 -c "import ${pair%%:*}" 2> /dev/null || missing_py+=("${pair##*:}")
  done
  if [ ${#missing_py[@]} -eq 0 ]; then
    echo "setup: python3 has safetensors, numpy, tensorboard and mlflow"
  else
    echo "setup: pip installing ${missing_py[*]} for $(command -v python3)"
    # Debian's own python3 refuses pip (PEP 668) unless told: test-only packages are fine there.
    python3 -m pip install --quiet "${missing_py[@]}" 2> /dev/null ||
      python3 -m pip install --quiet --break-system-packages "${missing_py[@]}" ||
      echo "setup: WARNING: pip install ${missing_py[*]} failed; the interop tests that need them will skip"
  fi
else
  echo "setup: WARNING: no python3 on PATH; the Python interop tests will skip"
fi
