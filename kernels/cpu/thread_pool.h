// The CPU kernels' thread pool: parallel_for (kernels/cpu/parallel.h), the conv drivers
// and the split GEMM run their parallel work here instead of in OpenMP regions.
//
// Why not OpenMP: after every parallel region libgomp's idle workers spin (300,000
// `pause`s by default, milliseconds on CPUs where pause is slow), and the caller spins
// at the region's barrier. On a machine whose cores are shared with other processes the
// spinning threads use up their scheduler share, a preempted worker then stalls every
// barrier for a time slice, and 2 threads ran a training step 4-10x slower than 1
// (MLP step: 28 ms on 1 thread, 136-272 ms on 2; with OMP_WAIT_POLICY=passive, 29 ms).
// Here idle threads spin for at most ~50 us and then block, so the pool behaves like
// passive OpenMP under load and like a spinning one for back-to-back calls.
//
// Invariants:
// - num_threads() counts the calling thread: run_tasks uses num_threads() - 1 workers.
//   Default: OMP_NUM_THREADS when set (its first entry), else the CPUs this process
//   may run on. Workers start on first use and live until the process exits.
// - One parallel call at a time: a call made while the pool is busy (from another
//   thread) or from inside a task runs all its tasks inline on its own thread.
// - run_tasks returns after every task finished; the first exception a task threw is
//   rethrown then (the other tasks still run).
#pragma once

#include <cstdint>
#include <functional>

namespace zae::kernels::cpu {

/// Threads a parallel call may use, the caller included (>= 1).
int num_threads();
/// Sets num_threads() (clamped to >= 1) for later parallel calls.
void set_num_threads(int n);
/// True on a thread that is running a pool task (nested parallel calls run inline).
bool in_parallel();
/// Runs task(i) for every i in [0, tasks), spread over up to min(tasks, num_threads())
/// threads (the caller takes part), and returns when all have finished.
void run_tasks(int64_t tasks, const std::function<void(int64_t)>& task);

}  // namespace zae::kernels::cpu
