// cuDNN glue under the conv / pooling / batch-norm launchers (kernels/cuda/conv.h,
// pooling.h, batch_norm.h): CUDNN_CHECK, handles, RAII descriptors, device scratch and
// the convolution algorithm cache. Uses cuDNN 9's legacy descriptor API (cnn + ops
// sub-libraries). CUDA-only header: include it from .cu files and engine/cuda/*.cpp only.
//
// Invariants:
// - Handles are per thread and per device (the device current when asked), created on
//   first use and destroyed when the thread exits; cudnn_handle(stream) binds `stream`.
// - Every descriptor is owned by exactly one RAII object; destructors never throw.
// - Scratch memory comes from the engine's caching allocator (Tensor::empty) on the
//   calling thread's current stream of the current device, and returns to it when the
//   Scratch is destroyed; stream-ordered reuse makes it safe to destroy a Scratch right
//   after queuing the work that uses it, provided that work runs on that current stream.
// - The convolution algorithm for a ConvKey is chosen once per process (cudnnFind*Ex,
//   the fastest result that fits the workspace cap, is deterministic when the key asks
//   for it, and keeps float32 out of TF32 unless the key allows it), then reused.
#pragma once

#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/error.h"

namespace zae::cuda::detail {
/// Throws zae::Error for a failed cuDNN call: status name, cudnnGetErrorString and
/// cuDNN's last error message (when it has one).
[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* expr, const char* file, int line);
}  // namespace zae::cuda::detail

/// Throws zae::Error naming the failed cuDNN call and its status.
#define CUDNN_CHECK(call)                                                                   \
  do {                                                                                      \
    cudnnStatus_t zae_cudnn_status_ = (call);                                               \
    if (zae_cudnn_status_ != CUDNN_STATUS_SUCCESS) [[unlikely]]                             \
      ::zae::cuda::detail::throw_cudnn_error(zae_cudnn_status_, #call, __FILE__, __LINE__); \
  } while (0)

namespace zae::cuda {

/// Largest workspace a convolution algorithm may use (bytes).
inline constexpr size_t kMaxCudnnWorkspaceBytes = size_t{1} << 30;
/// Convolution algorithms cached before the cache is cleared.
inline constexpr size_t kMaxConvAlgos = 4096;

/// The calling thread's cuDNN handle for the current device, bound to `stream`.
cudnnHandle_t cudnn_handle(cudaStream_t stream);

/// `v` as an int for a cuDNN descriptor; zae::Error naming `what` when it does not fit.
int to_cudnn_int(int64_t v, const char* what);

// ---- descriptors ---------------------------------------------------------------------

/// Owns one cuDNN descriptor, created in the constructor, destroyed in the destructor.
template <class H, cudnnStatus_t (*Create)(H*), cudnnStatus_t (*Destroy)(H)>
class CudnnDescriptor {
 public:
  CudnnDescriptor() { CUDNN_CHECK(Create(&h_)); }
  ~CudnnDescriptor() {
    if (h_ != nullptr) (void)Destroy(h_);
  }
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;
  H get() const { return h_; }

 private:
  H h_ = nullptr;
};

/// A 4-D tensor layout (N, C, H, W).
class TensorDescriptor
    : public CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor> {
 public:
  /// Dense row-major (N, C, H, W).
  void set(cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w);
  /// (N, C, H, W) with explicit element strides.
  void set(cudnnDataType_t type, const std::array<int64_t, 4>& dims, const std::array<int64_t, 4>& strides);
};

/// A dense (K, C, kH, kW) filter (NCHW).
class FilterDescriptor
    : public CudnnDescriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor> {
 public:
  void set(cudnnDataType_t type, int64_t k, int64_t c, int64_t h, int64_t w);
};

/// A 2-D cross-correlation with padding, stride, dilation and groups.
class ConvolutionDescriptor : public CudnnDescriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                                                     cudnnDestroyConvolutionDescriptor> {
 public:
  void set(const std::array<int64_t, 2>& padding, const std::array<int64_t, 2>& stride,
           const std::array<int64_t, 2>& dilation, int64_t groups, cudnnDataType_t compute_type,
           cudnnMathType_t math_type);
  void set_math_type(cudnnMathType_t math_type);
};

/// A 2-D pooling window (NaN propagating).
class PoolingDescriptor
    : public CudnnDescriptor<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor, cudnnDestroyPoolingDescriptor> {
 public:
  void set(cudnnPoolingMode_t mode, const std::array<int64_t, 2>& window, const std::array<int64_t, 2>& padding,
           const std::array<int64_t, 2>& stride);
};

// ---- scratch memory ------------------------------------------------------------------

/// `bytes` of device memory on the current device from the caching allocator (null when
/// bytes == 0), allocated for the thread's current stream of that device.
class Scratch {
 public:
  Scratch() = default;
  explicit Scratch(size_t bytes);
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  std::shared_ptr<void> holder_;  // keeps the backing tensor alive
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// ---- convolution algorithms ----------------------------------------------------------

enum class ConvDirection : uint8_t { forward, backward_data, backward_filter };

/// Everything that selects a convolution algorithm.
struct ConvKey {
  int32_t device = 0;
  ConvDirection direction = ConvDirection::forward;
  int32_t data_type = 0;     ///< cudnnDataType_t of x, w, y
  int32_t compute_type = 0;  ///< cudnnDataType_t of the accumulation
  bool allow_tf32 = false;   ///< float32 may run on TF32 tensor cores
  bool deterministic = false;
  std::array<int64_t, 4> x_dims{}, x_strides{}, w_dims{}, y_dims{}, y_strides{};
  std::array<int64_t, 2> padding{}, stride{}, dilation{};
  int64_t groups = 1;
  bool operator==(const ConvKey&) const = default;
};

/// The chosen algorithm (a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t), its
/// workspace and the math type the descriptor must carry when it runs.
struct ConvAlgo {
  int algo = 0;
  size_t workspace_bytes = 0;
  cudnnMathType_t math_type = CUDNN_DEFAULT_MATH;
};

/// Descriptors and device pointers of one convolution call. The search writes the
/// direction's output (y forward, x backward_data, w backward_filter).
struct ConvOperands {
  cudnnHandle_t handle = nullptr;
  cudnnTensorDescriptor_t x_desc = nullptr;
  cudnnFilterDescriptor_t w_desc = nullptr;
  cudnnConvolutionDescriptor_t conv_desc = nullptr;
  cudnnTensorDescriptor_t y_desc = nullptr;
  void* x = nullptr;
  void* w = nullptr;
  void* y = nullptr;
};

/// The algorithm for `key`, searched with cudnnFind*AlgorithmEx on `ops` the first time
/// the key is seen (this synchronizes the device once), then cached.
ConvAlgo conv_algorithm(const ConvKey& key, const ConvOperands& ops);

/// Entries in the algorithm cache (for tests).
size_t conv_algo_cache_size();

}  // namespace zae::cuda
