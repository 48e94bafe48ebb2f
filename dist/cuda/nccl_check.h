// NCCL_CHECK: turns a failed NCCL call into a zae::Error naming the call, NCCL's result
// string and NCCL's last error message (the detail behind the result code).
// CUDA builds only (it includes nccl.h): dist/nccl_process_group.cpp is its user.
// Invariants: the expression is evaluated once; ncclSuccess passes; every other result,
// ncclInProgress included, throws: calls on a non-blocking communicator that may return
// ncclInProgress are checked by the caller, which polls ncclCommGetAsyncError.
#pragma once

#include <nccl.h>

#include <string>

#include "engine/error.h"

namespace zae::dist::detail {

/// "<result string> (ncclResult_t R)" plus ": <last error>" when NCCL recorded one for `comm`
/// (nullptr: the calling thread's last error).
inline std::string nccl_error_text(ncclResult_t result, ncclComm_t comm = nullptr) {
  std::string text = ::zae::detail::concat(ncclGetErrorString(result), " (ncclResult_t ", static_cast<int>(result), ")");
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && last[0] != '\0') text += ::zae::detail::concat(": ", last);
  return text;
}

}  // namespace zae::dist::detail

/// Evaluates `call` (an ncclResult_t expression) once; throws zae::Error unless it is ncclSuccess.
#define NCCL_CHECK(call)                                                                                  \
  do {                                                                                                    \
    ncclResult_t zae_nccl_r_ = (call);                                                                    \
    if (zae_nccl_r_ != ncclSuccess) [[unlikely]]                                                          \
      ::zae::detail::throw_error("NCCL error " + ::zae::dist::detail::nccl_error_text(zae_nccl_r_), #call, \
                                 __FILE__, __LINE__);                                                     \
  } while (0)
