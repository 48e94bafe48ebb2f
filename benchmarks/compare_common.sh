# compare_common.sh: the part every benchmarks/compare_*.sh shares, sourced by them after
# they set compare_name (the script's name, for messages) and compare_target (the zae
# benchmark target): parses --build-dir/--threads/--rounds/--repetitions/--no-build (and
# --help: the calling script's header comment), checks that Debian's PyTorch imports,
# builds the target, and leaves root, build, threads, rounds, reps, py, bench, tmp (a
# scratch directory removed at exit) and load() (the load average) for the caller.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-bench"
threads=2
rounds=3
reps=5
do_build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build="$(realpath -m "$2")"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --repetitions) reps="$2"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "$compare_name: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

py=/usr/bin/python3
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "$compare_name: $py cannot import torch (install Debian's python3-torch)" >&2
  exit 1
fi

bench="$build/benchmarks/$compare_target"
if [[ $do_build -eq 1 ]]; then
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cmake -S "$root" -B "$build" -G Ninja -DZAE_CUDA=OFF -DZAE_BUILD_BENCHMARKS=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$build" --target $compare_target >/dev/null
fi
[[ -x "$bench" ]] || { echo "$compare_name: $bench not found (build it or drop --no-build)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
