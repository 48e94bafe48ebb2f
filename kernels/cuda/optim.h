// CUDA multi-tensor optimizer updates: the twins of kernels/cpu/optim.h. One call
// updates n_tensors parameters in place from their gradients and state buffers with
// as few kernel launches as the tensor count allows (usually one): the launcher packs
// a table of {param, grad, state pointers, numel, per-tensor scalars} entries and a
// block -> (tensor, chunk) map into the kernel's argument struct, and launches again
// only when a table fills up (a few dozen tensors or a few hundred chunks per launch).
//
// Invariants:
// - The pointer arrays and `sizes` / `fresh` / `steps` live on the host; the pointers
//   they hold are device pointers on the current device. Tensor i is dense with
//   sizes[i] elements in its parameter, gradient and each of its state buffers.
//   Parameters and gradients are T, state is acc_t<T> (float for Half / BFloat16),
//   arithmetic is in acc_t<T>. State arrays a configuration does not use may be null.
// - The math is the CPU twin's, operation by operation, with every product and sum
//   rounded separately (no fused multiply-add) and IEEE division and square root, so
//   float32 and float64 results are bit-identical to the CPU build without FMA
//   contraction. Per-tensor factors (Adam's bias corrections, Adagrad's decayed lr)
//   are computed on the host in double, exactly as the CPU twin does.
// - StepExtras (SGD, Adam / AdamW) as on the CPU: its pointer arrays live on the host,
//   the buffers they point to (masters, step counters, `hyper`) on the device. Master
//   weights and stochastic rounding give the CPU twin's bits. In capturable mode the
//   launch first increments the step counters (a small kernel), then the update reads
//   the hyperparameters and steps from device memory and computes the per-tensor
//   factors there (the host's formulas; pow may differ from the host's by an ulp), so a
//   launch captured in a CUDA graph follows later uploads and counts its own steps.
// - Work is enqueued on `stream`; nothing synchronizes. Pointers must stay valid until
//   the stream reaches the kernels (the caching allocator's stream order sees to it).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/optim.h"
#include "kernels/numeric.h"

namespace zae::kernels::cuda {

using cpu::AdagradHyper;
using cpu::AdamHyper;
using cpu::RmspropHyper;
using cpu::SgdHyper;
using cpu::StepExtras;

/// SGD (see cpu::sgd_step): fresh[i] != 0 marks a momentum buffer initialised from d in this step.
template <class T>
void sgd_step(const SgdHyper& h, int n_tensors, T* const* params, const T* const* grads,
              acc_t<T>* const* momentum_buffers, const uint8_t* fresh, const int64_t* sizes, cudaStream_t stream,
              const StepExtras& x = {});

/// Adam / AdamW (see cpu::adam_step); steps[i] = t of tensor i, already incremented
/// (unused in capturable mode, x.hyper != null, where x.step_counts holds the steps).
template <class T>
void adam_step(const AdamHyper& h, int n_tensors, T* const* params, const T* const* grads, acc_t<T>* const* exp_avg,
               acc_t<T>* const* exp_avg_sq, acc_t<T>* const* max_exp_avg_sq, const double* steps,
               const int64_t* sizes, cudaStream_t stream, const StepExtras& x = {});

/// RMSprop (see cpu::rmsprop_step).
template <class T>
void rmsprop_step(const RmspropHyper& h, int n_tensors, T* const* params, const T* const* grads,
                  acc_t<T>* const* square_avg, acc_t<T>* const* grad_avg, acc_t<T>* const* momentum_buffer,
                  const int64_t* sizes, cudaStream_t stream);

/// Adagrad (see cpu::adagrad_step); steps[i] = t of tensor i, already incremented.
template <class T>
void adagrad_step(const AdagradHyper& h, int n_tensors, T* const* params, const T* const* grads,
                  acc_t<T>* const* sum, const double* steps, const int64_t* sizes, cudaStream_t stream);

/// Whether `stream` is capturing into a CUDA graph (cudaStreamIsCapturing).
bool stream_is_capturing(cudaStream_t stream);

/// Copies n doubles from host memory to device memory, stream-ordered (cudaMemcpyAsync;
/// pageable sources are staged at the call, so `host_src` may change right after).
/// Not allowed while `stream` captures.
void upload_hyper(double* device_dst, const double* host_src, int n, cudaStream_t stream);

}  // namespace zae::kernels::cuda
