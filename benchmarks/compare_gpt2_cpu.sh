#!/usr/bin/env bash
# compare_gpt2_cpu.sh: the GPT-2 training step of zae beside PyTorch on the CPU, in one run.
#
# Times one training step (zero_grad + loss + backward + AdamW(lr 1e-3, weight_decay 0) step,
# float32) of GPT-2 with vocab 8192, block 128, 4 layers, 4 heads, n_embd 256 on a batch of
# 8 x 128 tokens with zae (benchmarks/bench_cpu_gpt2.cpp, nn::GPT2) and with Debian's
# PyTorch 1.13 (benchmarks/torch_gpt2_cpu.py, nanoGPT's model written out; /usr/bin/python3),
# both on the same number of threads, back to back (zae, torch, zae, torch, ... for --rounds
# rounds), so that both see the same machine state. Each side reports the median wall
# ms/step of its repetitions and the median process CPU ms/step (all threads: the work done,
# which load barely changes); the table shows the medians over the rounds, tokens/s and the
# ratios torch / zae (> 1: zae is faster). The load average is printed before, during and
# after: on a shared machine other work stretches both sides' wall times.
#
# Usage: benchmarks/compare_gpt2_cpu.sh [--build-dir DIR] [--threads N] [--rounds R]
#                                        [--repetitions K] [--no-build]
#   --build-dir DIR  zae build directory (default: build-bench; configured with
#                    -DZAE_BUILD_BENCHMARKS=ON -DCMAKE_BUILD_TYPE=Release when missing)
#   --threads N      threads for both (OMP_NUM_THREADS / torch.set_num_threads; default 2)
#   --rounds R       zae/torch alternations (default 3)
#   --repetitions K  timed repetitions per side per round, >= 3 s each (default 5)
#   --no-build       do not (re)build bench_cpu_gpt2
# Exit status 0 when both sides ran and validated; non-zero otherwise.
set -euo pipefail

compare_name=compare_gpt2_cpu.sh
compare_target=bench_cpu_gpt2
# shellcheck source=benchmarks/compare_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare_common.sh"

# zae_ms: "wall cpu", the median real and process-CPU ms/step over $reps repetitions.
zae_ms() {
  OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" "$bench" --benchmark_filter='^BM_train_step_gpt2/' \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true --benchmark_format=csv \
    >"$tmp/zae.csv" 2>"$tmp/zae.err" || { cat "$tmp/zae.err" >&2; return 1; }
  # name,iterations,real_time,cpu_time,time_unit,...; the median row, ms
  awk -F, '/_median"?,/ { print $3, $4 }' "$tmp/zae.csv"
}

# torch_ms: "wall cpu", the median wall and process-CPU ms/step over $reps repetitions.
torch_ms() {
  OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" "$py" "$root/benchmarks/torch_gpt2_cpu.py" \
    --threads "$threads" --repetitions "$reps" >"$tmp/torch.out" 2>"$tmp/torch.err" ||
    { cat "$tmp/torch.out" "$tmp/torch.err" >&2; return 1; }
  awk '$1 == "torch" && $2 == "gpt2" { print $3, $6 }' "$tmp/torch.out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

tokens=1024  # 8 x 128 per step
echo "GPT-2 training step on the CPU (vocab 8192, 4 layers, 4 heads, n_embd 256; 8 x 128 tokens), float32, AdamW;"
echo "$threads threads; $rounds rounds x $reps repetitions"
echo "torch: $("$py" -c 'import torch; print(torch.__version__)'); zae: $bench"
echo "load average before: $(load)"
: >"$tmp/z"
: >"$tmp/t"
for ((r = 1; r <= rounds; r++)); do
  z="$(zae_ms)"
  t="$(torch_ms)"
  [[ -n "$z" && -n "$t" ]] || { echo "compare_gpt2_cpu.sh: no timing in round $r" >&2; exit 1; }
  read -r z_wall z_cpu <<<"$z"
  read -r t_wall t_cpu <<<"$t"
  printf '  round %d: zae %.2f ms (cpu %.2f), torch %.2f ms (cpu %.2f); load %s\n' \
    "$r" "$z_wall" "$z_cpu" "$t_wall" "$t_cpu" "$(load)"
  echo "$z" >>"$tmp/z"
  echo "$t" >>"$tmp/t"
done
zw="$(cut -d' ' -f1 "$tmp/z" | median)"
zc="$(cut -d' ' -f2 "$tmp/z" | median)"
tw="$(cut -d' ' -f1 "$tmp/t" | median)"
tc="$(cut -d' ' -f2 "$tmp/t" | median)"
echo "load average after: $(load)"
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
tps() { awk -v n="$tokens" -v ms="$1" 'BEGIN { printf "%.0f", n * 1000 / ms }'; }
printf '| model | zae ms/step | torch ms/step | torch / zae | zae tokens/s | torch tokens/s | zae CPU ms/step | torch CPU ms/step | CPU torch / zae |\n'
printf '|-------|-------------|---------------|-------------|--------------|----------------|-----------------|-------------------|-----------------|\n'
printf '| gpt2  | %11.2f | %13.2f | %11s | %12s | %14s | %15.2f | %17.2f | %15s |\n' "$zw" "$tw" "$(ratio "$tw" "$zw")" \
  "$(tps "$zw")" "$(tps "$tw")" "$zc" "$tc" "$(ratio "$tc" "$zc")"
