// cuDNN handles, descriptors, scratch memory and the convolution algorithm cache (see cudnn.h).
#include "engine/cuda/cudnn.h"

#include <algorithm>
#include <climits>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/cuda/stream.h"
#include "engine/tensor.h"

namespace zae::cuda {

namespace detail {

void throw_cudnn_error(cudnnStatus_t status, const char* expr, const char* file, int line) {
  char last[512] = {};
  cudnnGetLastErrorString(last, sizeof(last));
  std::string message = ::zae::detail::concat("cuDNN error ", static_cast<int>(status), " (",
                                              cudnnGetErrorString(status), ")");
  if (last[0] != '\0') message += ::zae::detail::concat(": ", last);
  ::zae::detail::throw_error(std::move(message), expr, file, line);
}

}  // namespace detail

namespace {

// The calling thread's handles, one per device; destroyed when the thread exits
// (statuses ignored: destructors never throw).
struct ThreadHandles {
  std::unordered_map<int, cudnnHandle_t> by_device;
  ThreadHandles() = default;
  ThreadHandles(const ThreadHandles&) = delete;
  ThreadHandles& operator=(const ThreadHandles&) = delete;
  ~ThreadHandles() {
    for (auto& [dev, h] : by_device) (void)cudnnDestroy(h);
  }
};

ThreadHandles& thread_handles() {
  thread_local ThreadHandles handles;
  return handles;
}

std::string dims_str(const std::array<int64_t, 4>& d) {
  return ::zae::detail::concat("(", d[0], ", ", d[1], ", ", d[2], ", ", d[3], ")");
}

const char* direction_name(ConvDirection d) {
  switch (d) {
    case ConvDirection::forward: return "forward";
    case ConvDirection::backward_data: return "backward data";
    case ConvDirection::backward_filter: return "backward filter";
  }
  return "?";
}

std::string describe(const ConvKey& k) {
  return ::zae::detail::concat(
      "conv2d ", direction_name(k.direction), ": x ", dims_str(k.x_dims), ", weight ", dims_str(k.w_dims), ", y ",
      dims_str(k.y_dims), ", padding (", k.padding[0], ", ", k.padding[1], "), stride (", k.stride[0], ", ",
      k.stride[1], "), dilation (", k.dilation[0], ", ", k.dilation[1], "), groups ", k.groups, ", cudnn data type ",
      k.data_type, ", compute type ", k.compute_type, k.allow_tf32 ? ", tf32 allowed" : "",
      k.deterministic ? ", deterministic" : "");
}

struct ConvKeyHash {
  size_t operator()(const ConvKey& k) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    auto mix = [&h](int64_t v) {
      h ^= static_cast<uint64_t>(v);
      h *= 1099511628211ull;
    };
    mix(k.device);
    mix(static_cast<int64_t>(k.direction));
    mix(k.data_type);
    mix(k.compute_type);
    mix(k.allow_tf32);
    mix(k.deterministic);
    for (const auto* a : {&k.x_dims, &k.x_strides, &k.w_dims, &k.y_dims, &k.y_strides})
      for (int64_t v : *a) mix(v);
    for (const auto* a : {&k.padding, &k.stride, &k.dilation})
      for (int64_t v : *a) mix(v);
    mix(k.groups);
    return static_cast<size_t>(h);
  }
};

struct AlgoCache {
  std::mutex mu;
  std::unordered_map<ConvKey, ConvAlgo, ConvKeyHash> algos;
};

AlgoCache& algo_cache() {
  static auto* cache = new AlgoCache;  // leaked: used until the process ends
  return *cache;
}

// Whether a search result may be used for `key`.
template <class Perf>
bool acceptable(const Perf& p, const ConvKey& key, size_t workspace_cap) {
  if (p.status != CUDNN_STATUS_SUCCESS || p.memory > workspace_cap) return false;
  if (key.deterministic && p.determinism != CUDNN_DETERMINISTIC) return false;
  const bool tensor_math = p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
  // float32 without TF32: no tensor-core math (it would round the inputs to TF32).
  if (key.data_type == CUDNN_DATA_FLOAT && !key.allow_tf32 && tensor_math) return false;
  // Never let cuDNN convert float32 data down to 16 bits.
  if (key.data_type == CUDNN_DATA_FLOAT && p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
  return true;
}

// Largest workspace any usable heuristic result asks for, capped.
template <class Perf>
size_t search_workspace(const std::vector<Perf>& perfs, int count, const ConvKey& key) {
  size_t bytes = 0;
  for (int i = 0; i < count; ++i)
    if (acceptable(perfs[static_cast<size_t>(i)], key, kMaxCudnnWorkspaceBytes))
      bytes = std::max(bytes, perfs[static_cast<size_t>(i)].memory);
  return bytes;
}

// Heuristics (to size the search workspace), then the timed search; the first
// acceptable result (the fastest) wins.
template <class Perf, class GetCount, class Heuristic, class Find>
ConvAlgo search(const ConvKey& key, GetCount get_count, Heuristic heuristic, Find find) {
  int max_algos = 0;
  CUDNN_CHECK(get_count(&max_algos));
  max_algos = std::max(max_algos, 1);
  std::vector<Perf> perfs(static_cast<size_t>(max_algos));
  int count = 0;
  CUDNN_CHECK(heuristic(max_algos, &count, perfs.data()));
  Scratch ws;
  try {
    ws = Scratch(search_workspace(perfs, count, key));
  } catch (const Error&) {
    ws = Scratch();  // out of memory: search among the algorithms that need no workspace
  }
  count = 0;
  CUDNN_CHECK(find(max_algos, &count, perfs.data(), ws.get(), ws.bytes()));
  for (int i = 0; i < count; ++i) {
    const Perf& p = perfs[static_cast<size_t>(i)];
    if (!acceptable(p, key, ws.bytes())) continue;
    // float32 without TF32 runs in FMA math whatever the result reports (CUDNN_DEFAULT_MATH
    // would let cuDNN pick TF32 tensor cores on Ampere and later).
    const bool strict_fp32 = key.data_type == CUDNN_DATA_FLOAT && !key.allow_tf32;
    return ConvAlgo{static_cast<int>(p.algo), p.memory, strict_fp32 ? CUDNN_FMA_MATH : p.mathType};
  }
  ZAE_FAIL("cuDNN has no usable algorithm for ", describe(key), " (", count, " candidates, workspace limit ",
           ws.bytes(), " bytes)");
}

ConvAlgo find_algorithm(const ConvKey& key, const ConvOperands& o) {
  const cudnnHandle_t h = o.handle;
  switch (key.direction) {
    case ConvDirection::forward:
      return search<cudnnConvolutionFwdAlgoPerf_t>(
          key, [&](int* n) { return cudnnGetConvolutionForwardAlgorithmMaxCount(h, n); },
          [&](int req, int* n, cudnnConvolutionFwdAlgoPerf_t* p) {
            return cudnnGetConvolutionForwardAlgorithm_v7(h, o.x_desc, o.w_desc, o.conv_desc, o.y_desc, req, n, p);
          },
          [&](int req, int* n, cudnnConvolutionFwdAlgoPerf_t* p, void* ws, size_t ws_bytes) {
            return cudnnFindConvolutionForwardAlgorithmEx(h, o.x_desc, o.x, o.w_desc, o.w, o.conv_desc, o.y_desc,
                                                          o.y, req, n, p, ws, ws_bytes);
          });
    case ConvDirection::backward_data:
      return search<cudnnConvolutionBwdDataAlgoPerf_t>(
          key, [&](int* n) { return cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, n); },
          [&](int req, int* n, cudnnConvolutionBwdDataAlgoPerf_t* p) {
            return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, o.w_desc, o.y_desc, o.conv_desc, o.x_desc, req, n,
                                                               p);
          },
          [&](int req, int* n, cudnnConvolutionBwdDataAlgoPerf_t* p, void* ws, size_t ws_bytes) {
            return cudnnFindConvolutionBackwardDataAlgorithmEx(h, o.w_desc, o.w, o.y_desc, o.y, o.conv_desc,
                                                               o.x_desc, o.x, req, n, p, ws, ws_bytes);
          });
    case ConvDirection::backward_filter:
      return search<cudnnConvolutionBwdFilterAlgoPerf_t>(
          key, [&](int* n) { return cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, n); },
          [&](int req, int* n, cudnnConvolutionBwdFilterAlgoPerf_t* p) {
            return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, o.x_desc, o.y_desc, o.conv_desc, o.w_desc, req,
                                                                 n, p);
          },
          [&](int req, int* n, cudnnConvolutionBwdFilterAlgoPerf_t* p, void* ws, size_t ws_bytes) {
            return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, o.x_desc, o.x, o.y_desc, o.y, o.conv_desc,
                                                                 o.w_desc, o.w, req, n, p, ws, ws_bytes);
          });
  }
  ZAE_FAIL("conv_algorithm: unknown direction ", static_cast<int>(key.direction));
}

}  // namespace

// ---- handles -----------------------------------------------------------------------------

cudnnHandle_t cudnn_handle(cudaStream_t stream) {
  const int dev = current_device();
  auto& map = thread_handles().by_device;
  auto it = map.find(dev);
  if (it == map.end()) {
    cudnnHandle_t h = nullptr;
    CUDNN_CHECK(cudnnCreate(&h));
    it = map.emplace(dev, h).first;
  }
  CUDNN_CHECK(cudnnSetStream(it->second, stream));
  return it->second;
}

int to_cudnn_int(int64_t v, const char* what) {
  ZAE_CHECK(v >= INT_MIN && v <= INT_MAX, "cuDNN: ", what, " = ", v, " does not fit a 32-bit int");
  return static_cast<int>(v);
}

// ---- descriptors -------------------------------------------------------------------------

void TensorDescriptor::set(cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w) {
  set(type, {n, c, h, w}, {c * h * w, h * w, w, 1});
}

void TensorDescriptor::set(cudnnDataType_t type, const std::array<int64_t, 4>& dims,
                           const std::array<int64_t, 4>& strides) {
  CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(
      get(), type, to_cudnn_int(dims[0], "tensor dim N"), to_cudnn_int(dims[1], "tensor dim C"),
      to_cudnn_int(dims[2], "tensor dim H"), to_cudnn_int(dims[3], "tensor dim W"),
      to_cudnn_int(strides[0], "tensor stride N"), to_cudnn_int(strides[1], "tensor stride C"),
      to_cudnn_int(strides[2], "tensor stride H"), to_cudnn_int(strides[3], "tensor stride W")));
}

void FilterDescriptor::set(cudnnDataType_t type, int64_t k, int64_t c, int64_t h, int64_t w) {
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(get(), type, CUDNN_TENSOR_NCHW, to_cudnn_int(k, "filter dim K"),
                                         to_cudnn_int(c, "filter dim C"), to_cudnn_int(h, "filter dim H"),
                                         to_cudnn_int(w, "filter dim W")));
}

void ConvolutionDescriptor::set(const std::array<int64_t, 2>& padding, const std::array<int64_t, 2>& stride,
                                const std::array<int64_t, 2>& dilation, int64_t groups, cudnnDataType_t compute_type,
                                cudnnMathType_t math_type) {
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
      get(), to_cudnn_int(padding[0], "padding"), to_cudnn_int(padding[1], "padding"),
      to_cudnn_int(stride[0], "stride"), to_cudnn_int(stride[1], "stride"), to_cudnn_int(dilation[0], "dilation"),
      to_cudnn_int(dilation[1], "dilation"), CUDNN_CROSS_CORRELATION, compute_type));
  CUDNN_CHECK(cudnnSetConvolutionGroupCount(get(), to_cudnn_int(groups, "groups")));
  set_math_type(math_type);
}

void ConvolutionDescriptor::set_math_type(cudnnMathType_t math_type) {
  CUDNN_CHECK(cudnnSetConvolutionMathType(get(), math_type));
}

void PoolingDescriptor::set(cudnnPoolingMode_t mode, const std::array<int64_t, 2>& window,
                            const std::array<int64_t, 2>& padding, const std::array<int64_t, 2>& stride) {
  CUDNN_CHECK(cudnnSetPooling2dDescriptor(
      get(), mode, CUDNN_PROPAGATE_NAN, to_cudnn_int(window[0], "pooling window"),
      to_cudnn_int(window[1], "pooling window"), to_cudnn_int(padding[0], "pooling padding"),
      to_cudnn_int(padding[1], "pooling padding"), to_cudnn_int(stride[0], "pooling stride"),
      to_cudnn_int(stride[1], "pooling stride")));
}

// ---- scratch -------------------------------------------------------------------------------

Scratch::Scratch(size_t bytes) {
  if (bytes == 0) return;
  auto t = std::make_shared<Tensor>(Tensor::empty(
      {static_cast<int64_t>(bytes)}, {.dtype = DType::uint8, .device = Device::cuda(current_device())}));
  ptr_ = t->raw_data();
  bytes_ = bytes;
  holder_ = std::move(t);
}

// ---- algorithms ----------------------------------------------------------------------------

ConvAlgo conv_algorithm(const ConvKey& key, const ConvOperands& ops) {
  AlgoCache& cache = algo_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.algos.find(key);
    if (it != cache.algos.end()) return it->second;
  }
  // Searched outside the lock (it runs and times kernels); two threads may search the
  // same key at once, and either result is a valid choice.
  const ConvAlgo algo = find_algorithm(key, ops);
  std::lock_guard<std::mutex> lock(cache.mu);
  if (cache.algos.size() >= kMaxConvAlgos) cache.algos.clear();
  cache.algos.insert_or_assign(key, algo);
  return algo;
}

size_t conv_algo_cache_size() {
  AlgoCache& cache = algo_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  return cache.algos.size();
}

}  // namespace zae::cuda
