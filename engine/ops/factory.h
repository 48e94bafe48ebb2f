// Tensor factories. Random factories draw from a Philox stream (engine/generator.h):
// the same seed and offset give the same numbers on every device.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "engine/generator.h"
#include "engine/tensor.h"

namespace zae {

Tensor empty(const Shape& shape, TensorOptions opts = {});
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
/// Values start, start+step, ... < end (PyTorch's arange); default dtype int64 unless given.
Tensor arange(double start, double end, double step = 1.0, TensorOptions opts = {.dtype = DType::int64});
Tensor arange(int64_t end, TensorOptions opts = {.dtype = DType::int64});
/// `steps` evenly spaced values from start to end inclusive.
Tensor linspace(double start, double end, int64_t steps, TensorOptions opts = {});
Tensor eye(int64_t n, int64_t m = -1, TensorOptions opts = {});
/// Uniform [0, 1).
Tensor rand(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
/// Standard normal.
Tensor randn(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
/// Integers uniform in [low, high).
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts = {.dtype = DType::int64},
               Generator* gen = nullptr);

/// A tensor holding a copy of `values` with the given shape (default 1-D).
template <class T>
Tensor tensor(const std::vector<T>& values, const Shape& shape = {}, TensorOptions opts = {.dtype = dtype_of<T>()});
Tensor tensor(std::initializer_list<double> values, const Shape& shape = {}, TensorOptions opts = {});
/// A 0-dim tensor.
Tensor scalar_tensor(double value, TensorOptions opts = {});

Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor rand_like(const Tensor& t, Generator* gen = nullptr);
Tensor randn_like(const Tensor& t, Generator* gen = nullptr);

}  // namespace zae
