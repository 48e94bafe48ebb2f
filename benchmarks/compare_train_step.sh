#!/usr/bin/env bash
# compare_train_step.sh: the CPU training step of zae beside PyTorch, in one run.
#
# Times one training step (zero_grad + forward + cross_entropy + backward + AdamW step,
# float32, batch 256) of the MLP 784-1024-1024-10 and of the CNN conv32-conv64-fc128
# (28x28) with zae (benchmarks/bench_cpu_train_step.cpp) and with Debian's PyTorch 1.13
# (benchmarks/torch_train_step.py, /usr/bin/python3), both on the same number of
# threads, back to back per model (zae, torch, zae, torch, ... for --rounds rounds), so
# that both see the same machine state. Each side reports the median wall ms/step of
# its repetitions and the median process CPU ms/step (all threads: the work done, which
# load barely changes); the table shows the medians over the rounds and the ratios
# torch / zae (> 1: zae is faster). The load average is printed before, during and
# after: on a shared machine other work stretches both sides' wall times.
#
# Usage: benchmarks/compare_train_step.sh [--build-dir DIR] [--threads N] [--rounds R]
#                                          [--repetitions K] [--no-build]
#   --build-dir DIR  zae build directory (default: build-bench; configured with
#                    -DZAE_BUILD_BENCHMARKS=ON -DCMAKE_BUILD_TYPE=Release when missing)
#   --threads N      threads for both (OMP_NUM_THREADS / torch.set_num_threads; default 2)
#   --rounds R       zae/torch alternations per model (default 3)
#   --repetitions K  timed repetitions per side per round (default 5)
#   --no-build       do not (re)build bench_cpu_train_step
# Exit status 0 when both sides ran and validated; non-zero otherwise.
set -euo pipefail

compare_name=compare_train_step.sh
compare_target=bench_cpu_train_step
# shellcheck source=benchmarks/compare_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare_common.sh"

# zae_ms MODEL: "wall cpu", the median real and process-CPU ms/step over $reps repetitions.
zae_ms() {
  local filter="BM_train_step_$1"
  OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" "$bench" --benchmark_filter="^${filter}/" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true --benchmark_format=csv \
    >"$tmp/zae.csv" 2>"$tmp/zae.err" || { cat "$tmp/zae.err" >&2; return 1; }
  # name,iterations,real_time,cpu_time,time_unit,...; the median row, ms
  awk -F, '/_median"?,/ { print $3, $4 }' "$tmp/zae.csv"
}

# torch_ms MODEL: "wall cpu", the median wall and process-CPU ms/step over $reps repetitions.
torch_ms() {
  OMP_NUM_THREADS="$threads" "$py" "$root/benchmarks/torch_train_step.py" --threads "$threads" \
    --repetitions "$reps" "$1" >"$tmp/torch.out" 2>"$tmp/torch.err" || { cat "$tmp/torch.err" >&2; return 1; }
  awk -v m="$1" '$1 == "torch" && $2 == m { print $3, $6 }' "$tmp/torch.out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "CPU training step, float32, batch 256, AdamW; $threads threads; $rounds rounds x $reps repetitions"
echo "torch: $("$py" -c 'import torch; print(torch.__version__)'); zae: $bench"
echo "load average before: $(load)"
declare -A zw zc tw tc
for model in mlp cnn; do
  : >"$tmp/z_$model"
  : >"$tmp/t_$model"
  for ((r = 1; r <= rounds; r++)); do
    z="$(zae_ms "$model")"
    t="$(torch_ms "$model")"
    [[ -n "$z" && -n "$t" ]] || { echo "compare_train_step.sh: no timing for $model" >&2; exit 1; }
    read -r z_wall z_cpu <<<"$z"
    read -r t_wall t_cpu <<<"$t"
    printf '  round %d %s: zae %.2f ms (cpu %.2f), torch %.2f ms (cpu %.2f); load %s\n' \
      "$r" "$model" "$z_wall" "$z_cpu" "$t_wall" "$t_cpu" "$(load)"
    echo "$z" >>"$tmp/z_$model"
    echo "$t" >>"$tmp/t_$model"
  done
  zw[$model]="$(cut -d' ' -f1 "$tmp/z_$model" | median)"
  zc[$model]="$(cut -d' ' -f2 "$tmp/z_$model" | median)"
  tw[$model]="$(cut -d' ' -f1 "$tmp/t_$model" | median)"
  tc[$model]="$(cut -d' ' -f2 "$tmp/t_$model" | median)"
done
echo "load average after: $(load)"
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '| model | zae ms/step | torch ms/step | torch / zae | zae CPU ms/step | torch CPU ms/step | CPU torch / zae | zae samples/s |\n'
printf '|-------|-------------|---------------|-------------|-----------------|-------------------|-----------------|---------------|\n'
for model in mlp cnn; do
  printf '| %-5s | %11.2f | %13.2f | %11s | %15.2f | %17.2f | %15s | %13.0f |\n' "$model" "${zw[$model]}" \
    "${tw[$model]}" "$(ratio "${tw[$model]}" "${zw[$model]}")" "${zc[$model]}" "${tc[$model]}" \
    "$(ratio "${tc[$model]}" "${zc[$model]}")" "$(awk -v b="${zw[$model]}" 'BEGIN { print 256 * 1000 / b }')"
done
