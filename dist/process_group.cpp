// Backend-independent pieces of dist/process_group.h. The backends live in
// dist/gloo_process_group.cpp and dist/nccl_process_group.cpp.
#include "dist/process_group.h"

namespace zae::dist {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::min: return "min";
    case ReduceOp::max: return "max";
  }
  return "unknown";
}

}  // namespace zae::dist
