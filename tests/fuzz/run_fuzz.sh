#!/usr/bin/env bash
# Builds the libFuzzer target for the safetensors reader with clang (ASan + UBSan) in
# its own build directory and runs it over a copy of the seed corpus for SECONDS
# seconds (default 60). Prints the executions; exits non-zero on any crash, sanitizer
# report, leak or timeout (the reproducer is left in $BUILD_DIR/artifacts/).
#   tests/fuzz/run_fuzz.sh [SECONDS]      env: BUILD_DIR (build-fuzz), JOBS (nproc)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
build="${BUILD_DIR:-build-fuzz}"
jobs="${JOBS:-$(nproc)}"

for tool in clang clang++ cmake ninja; do
  command -v "$tool" > /dev/null || { echo "run_fuzz: $tool not found (run scripts/setup.sh)" >&2; exit 2; }
done
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

start=$(date +%s)
mkdir -p "$build"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DZAE_FUZZ=ON -DZAE_CUDA=OFF -DZAE_BUILD_BENCHMARKS=OFF \
  -DZAE_NATIVE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; exit 2; }
ninja -C "$build" -j "$jobs" fuzz_safetensors
built=$(date +%s)
echo "run_fuzz: built in $((built - start)) s"

# New inputs go to a scratch corpus; the committed seeds are only read.
work="$build/corpus"
mkdir -p "$work" "$build/artifacts"
log="$build/fuzz.log"
set +e
"$build/tests/fuzz/fuzz_safetensors" "$work" tests/fuzz/corpus -dict=tests/fuzz/safetensors.dict \
  -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/artifacts/" > "$log" 2>&1
rc=$?
set -e
end=$(date +%s)
tail -n 25 "$log"
execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
echo "run_fuzz: ${execs:-?} executions in ${seconds} s of fuzzing; $((end - start)) s end to end (build + run)"
if [ $rc -ne 0 ]; then
  echo "run_fuzz: FAILED (exit $rc): see $log and $build/artifacts/" >&2
  exit 1
fi
echo "run_fuzz: no crashes"
