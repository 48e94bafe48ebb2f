// CPU fused scaled-dot-product attention (flash attention): the CPU path of
// scaled_dot_product_attention and the oracle of its CUDA twin (kernels/cuda/attention.h).
//
// Invariants:
// - q, o, d_o, dq are dense (BH, Tq, D); k, v, dk, dv are dense (BH, Tk, D); lse is
//   dense (BH, Tq) in acc_t<T> (float for float32 / bfloat16 / float16, double for
//   float64). Every pointer is host memory; outputs are overwritten and never read.
// - Math: S = scale * q k^T, P = softmax(S) over keys, O = P v, lse_i = log sum_j exp(S_ij).
//   With causal, key j is hidden from query i when j > i (requires Tq == Tk; the op
//   checks it). Tk >= 1, so no row is empty.
// - Forward: tiled online softmax (FlashAttention-2): per (head, block of kBlockQ query
//   rows) a running max m, running sum l and an unnormalised O are updated block of
//   kBlockK keys at a time; no (Tq, Tk) matrix beyond one (kBlockQ, kBlockK) tile
//   exists. Work items (head, query block) run in parallel.
// - Backward: P is recomputed per tile from q, k and lse; D_i = sum_d dO_id O_id;
//   dS = P * (dP - D), dP = dO v^T; dv = P^T dO, dk = scale dS^T q, dq = scale dS k.
//   One head per task (heads in parallel), key blocks outer, query blocks inner, so
//   dk / dv of a key block and dq of the head accumulate in private buffers: results do
//   not depend on the thread count (bitwise reproducible).
// - All arithmetic is in acc_t<T>; 16-bit inputs are widened on load and rounded to
//   nearest even on the final store only.
#pragma once

#include <cstdint>

#include "kernels/numeric.h"

namespace zae::kernels::cpu {

/// Sizes of one attention problem: BH independent heads of (Tq queries, Tk keys, D dims).
struct AttentionDims {
  int64_t batch_heads = 0;  ///< BH: product of every leading dim (batch, heads)
  int64_t tq = 0;           ///< query positions
  int64_t tk = 0;           ///< key / value positions (>= 1)
  int64_t d = 0;            ///< head dim of q, k and v
  bool causal = false;      ///< hide key j from query i when j > i (needs tq == tk)
  double scale = 1.0;       ///< multiplies q k^T
};

/// o = softmax(scale q k^T [+ causal mask]) v; lse (BH, Tq) = the rows' log-sum-exp.
template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* o, acc_t<T>* lse, const AttentionDims& dims);

/// Gradients of attention_forward from d_o (BH, Tq, D), the saved output o and lse.
/// dq, dk, dv must all be given (overwritten).
template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* o, const T* d_o, const acc_t<T>* lse, T* dq,
                        T* dk, T* dv, const AttentionDims& dims);

}  // namespace zae::kernels::cpu
