"""The timing loop every PyTorch peer in benchmarks/ shares, the same method as the zae
benchmarks: 2 warm-up calls, then `repetitions` repetitions of at least `min_time` seconds of
calls each; the ms per call of a repetition is its wall time / its call count.
Returns (median wall ms, the per-repetition wall ms, median process CPU ms) per call
(process CPU: all threads, the work done)."""
import statistics
import time


def time_steps(step, repetitions, min_time):
    for _ in range(2):
        step()
    per_step, cpu_per_step = [], []
    for _ in range(repetitions):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            step()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        per_step.append(elapsed / n * 1e3)
        cpu_per_step.append((time.process_time() - c0) / n * 1e3)
    return statistics.median(per_step), per_step, statistics.median(cpu_per_step)
