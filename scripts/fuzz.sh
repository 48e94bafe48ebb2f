#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz: clang, ASan + UBSan) in their own build
# directory and runs each on a scratch copy of its seed corpus (the committed seeds are
# only read), one after the other:
#   fuzz_safetensors  seeds tests/fuzz/corpus       default 60 s
#   fuzz_checkpoint   seeds tests/fuzz/corpus_ckpt  default 30 s
# Prints each target's executions, new corpus size and crashes; exits non-zero when any
# target finds a crash, a sanitizer report, a leak, an out-of-memory (-rss_limit_mb) or
# a slow input (-timeout); the reproducers are left in $BUILD_DIR/fuzz/<target>/artifacts/
# (replay one: $BUILD_DIR/tests/fuzz/<target> FILE).
#   scripts/fuzz.sh [SAFETENSORS_SECONDS [CHECKPOINT_SECONDS]]   (0 skips a target)
#   env: BUILD_DIR (build-fuzz), JOBS (nproc), FUZZ_KEEP_CORPUS=1 (continue from the
#        scratch corpus of the previous run instead of a fresh copy of the seeds)
# scripts/test.sh runs it after ctest unless ZAE_SKIP_FUZZ=1.
set -euo pipefail
cd "$(dirname "$0")/.."
st_seconds="${1:-60}"
ckpt_seconds="${2:-30}"
build="${BUILD_DIR:-build-fuzz}"
jobs="${JOBS:-$(nproc)}"

for tool in clang clang++ cmake ninja; do
  command -v "$tool" > /dev/null || { echo "fuzz: $tool not found (run scripts/setup.sh)" >&2; exit 2; }
done
runtime_dir=$(clang++ -print-runtime-dir)
if ! ls "$runtime_dir"/libclang_rt.fuzzer-*.a > /dev/null 2>&1; then
  echo "fuzz: clang++ $(clang++ -dumpversion) has no libFuzzer runtime in $runtime_dir: install" \
       "libclang-rt-$(clang++ -dumpversion | cut -d. -f1)-dev (scripts/setup.sh installs the one for Debian 12's clang)" >&2
  exit 2
fi
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

start=$(date +%s)
mkdir -p "$build"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DZAE_FUZZ=ON -DZAE_CUDA=OFF -DZAE_BUILD_BENCHMARKS=OFF \
  -DZAE_NATIVE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" \
  > "$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; exit 2; }
ninja -C "$build" -j "$jobs" fuzz_safetensors fuzz_checkpoint
echo "fuzz: built in $(($(date +%s) - start)) s"

# One thread per input (the engine's OpenMP pool is no help on inputs this small);
# UBSan stops at the first report with a stack trace.
export OMP_NUM_THREADS=1
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
summary=()
# run_target NAME SECONDS SEEDS DICT MAX_LEN
run_target() {
  local name=$1 seconds=$2 seeds=$3 dict=$4 max_len=$5
  [ "$seconds" -gt 0 ] || { summary+=("$name: skipped"); return 0; }
  local dir="$build/fuzz/$name"
  local work="$dir/corpus" artifacts="$dir/artifacts" log="$dir/fuzz.log"
  if [ "${FUZZ_KEEP_CORPUS:-0}" != 1 ]; then rm -rf "$work"; fi
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts"
  cp "$seeds"/* "$work"/
  local seeded
  seeded=$(find "$work" -type f | wc -l)
  echo "fuzz: $name for $seconds s over $seeded inputs (seeds: $seeds)"
  local rc=0
  "$build/tests/fuzz/$name" "$work" -dict="$dict" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    > "$log" 2>&1 || rc=$?
  local execs crashes grown
  execs=$(awk '/^stat::number_of_executed_units/ {print $2}' "$log")
  crashes=$(find "$artifacts" -type f | wc -l)
  grown=$(find "$work" -type f | wc -l)
  summary+=("$name: ${execs:-?} executions in $seconds s, corpus $seeded -> $grown, $crashes crash(es), exit $rc")
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz: $name FAILED (exit $rc): log $log, reproducers in $artifacts/" >&2
    failed+=("$name")
  fi
}

run_target fuzz_safetensors "$st_seconds" tests/fuzz/corpus tests/fuzz/safetensors.dict 65536
run_target fuzz_checkpoint "$ckpt_seconds" tests/fuzz/corpus_ckpt tests/fuzz/checkpoint.dict 32768

printf 'fuzz: %s\n' "${summary[@]}"
echo "fuzz: $(($(date +%s) - start)) s end to end (configure + build + fuzzing)"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no crashes"
