#include "engine/autocast.h"

#include "engine/error.h"

namespace zae::autocast {

namespace {
thread_local DType t_low = DType::float32;
thread_local bool t_suspended = false;
}  // namespace

bool enabled() { return t_low != DType::float32 && !t_suspended; }
DType low_dtype() { return enabled() ? t_low : DType::float32; }

Guard::Guard(DType low) : previous_(t_low), previous_suspended_(t_suspended) {
  ZAE_CHECK(low == DType::bfloat16 || low == DType::float16 || low == DType::float32,
            "autocast: the low precision must be bfloat16, float16 or float32 (off), got ", low);
  t_low = low;
  t_suspended = false;
}

Guard::~Guard() {
  t_low = previous_;
  t_suspended = previous_suspended_;
}

Suspend::Suspend() : previous_(t_suspended) { t_suspended = true; }
Suspend::~Suspend() { t_suspended = previous_; }

Tensor to_low(const Tensor& t) {
  if (!enabled() || !t.defined() || t.dtype() != DType::float32) return t;
  return t.to(t_low);
}

Tensor to_float(const Tensor& t) {
  if (!enabled() || !t.defined() || (t.dtype() != DType::bfloat16 && t.dtype() != DType::float16)) return t;
  return t.to(DType::float32);
}

}  // namespace zae::autocast
