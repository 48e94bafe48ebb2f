// Point-to-point transfers of the Gloo process group (see dist/gloo_process_group.h):
// send, recv and send_recv, announced by a CallFingerprint so that a receiver checks
// dtype and size before it posts its buffer, and the raw exchange the ring's steps use.
// Both run on the group's communication thread. Zero-byte payloads are not sent (both
// sides know the size), so empty chunks of the ring cost nothing.
#include <gloo/context.h>
#include <gloo/transport/unbound_buffer.h>

#include <cstring>
#include <exception>
#include <memory>
#include <vector>

#include "dist/gloo_process_group.h"
#include "engine/error.h"

namespace zae::dist {
namespace {

using gloo::transport::UnboundBuffer;

// Largest unwanted message a receiver drains so that its sender can complete.
constexpr int64_t kMaxDrainBytes = int64_t{1} << 30;

}  // namespace

void GlooProcessGroup::wait_recv(UnboundBuffer& buffer, int src) {
  if (!buffer.waitRecv(options().timeout)) ZAE_FAIL("receive from rank ", src, " was aborted");
}

void GlooProcessGroup::wait_send(UnboundBuffer& buffer, int dst) {
  if (!buffer.waitSend(options().timeout)) ZAE_FAIL("send to rank ", dst, " was aborted");
}

void GlooProcessGroup::exchange(const void* out, size_t out_bytes, int dst, void* in, size_t in_bytes, int src,
                                uint64_t slot) {
  if (dst == rank() && src == rank()) {  // a ring of one, or a rank sending itself its own data
    ZAE_CHECK(out_bytes == in_bytes, "send_recv (gloo): a rank exchanging with itself needs equal sizes, got ",
              out_bytes, " and ", in_bytes, " bytes");
    if (in_bytes > 0) std::memmove(in, out, in_bytes);
    return;
  }
  std::unique_ptr<UnboundBuffer> incoming, outgoing;
  if (in_bytes > 0) {
    incoming = context_->createUnboundBuffer(in, in_bytes);
    incoming->recv(src, slot);
  }
  if (out_bytes > 0) {
    outgoing = context_->createUnboundBuffer(const_cast<void*>(out), out_bytes);  // only read
    outgoing->send(dst, slot);
  }
  if (incoming) wait_recv(*incoming, src);
  if (outgoing) wait_send(*outgoing, dst);
}

void GlooProcessGroup::transfer(const Tensor* out, int dst, const Tensor* in, int src, uint32_t tag) {
  const uint64_t slot = detail::kGlooUserSlotBase | tag;
  if (out != nullptr && in != nullptr && dst == rank()) {  // with itself (validated: src == rank too)
    exchange(out->raw_data(), out->nbytes(), dst, in->raw_data(), in->nbytes(), src, slot);
    return;
  }
  // Every message is its 80-byte record, then (unless empty) its payload, on the same slot:
  // Gloo delivers one sender's messages on one slot in order.
  detail::CallFingerprint out_head, in_head;
  std::unique_ptr<UnboundBuffer> head_in, head_out, body_out, body_in;
  if (in != nullptr) {
    head_in = context_->createUnboundBuffer(&in_head, sizeof(in_head));
    head_in->recv(src, slot);
  }
  if (out != nullptr) {
    out_head = detail::make_fingerprint(detail::CallKind::p2p, out, ReduceOp::sum, AllReduceAlgorithm::library,
                                        static_cast<int>(tag));
    head_out = context_->createUnboundBuffer(&out_head, sizeof(out_head));
    head_out->send(dst, slot);
    if (out->nbytes() > 0) {
      body_out = context_->createUnboundBuffer(out->raw_data(), out->nbytes());  // only read
      body_out->send(dst, slot);
    }
  }
  if (in != nullptr) {
    wait_recv(*head_in, src);
    const auto expected = detail::make_fingerprint(detail::CallKind::p2p, in, ReduceOp::sum,
                                                   AllReduceAlgorithm::library, static_cast<int>(tag));
    try {
      detail::check_p2p_match(in_head, src, expected);
    } catch (...) {
      // Take the unwanted payload off the wire, so that the sender completes, then fail here.
      const int64_t bytes = detail::announced_bytes(in_head);
      if (bytes > 0 && bytes <= kMaxDrainBytes) {
        try {
          std::vector<uint8_t> sink(static_cast<size_t>(bytes));
          auto drain = context_->createUnboundBuffer(sink.data(), sink.size());
          drain->recv(src, slot);
          wait_recv(*drain, src);
        } catch (...) {
          // The mismatch is the error worth reporting.
        }
      }
      throw;
    }
    if (in->nbytes() > 0) {
      body_in = context_->createUnboundBuffer(in->raw_data(), in->nbytes());
      body_in->recv(src, slot);
      wait_recv(*body_in, src);
    }
  }
  if (head_out) wait_send(*head_out, dst);
  if (body_out) wait_send(*body_out, dst);
}

void GlooProcessGroup::send(const Tensor& t, int dst, uint32_t tag) {
  const std::string name = "send to rank " + std::to_string(dst) + " (tag " + std::to_string(tag) + ")";
  detail::check_cpu_tensor(name, t, "tensor");
  detail::check_peer(name, "destination", dst, size());
  ZAE_CHECK(dst != rank(), name, " (gloo): a rank cannot send to itself (rank ", rank(), "); use send_recv");
  comm_->run(name, [this, t, dst, tag] { transfer(&t, dst, nullptr, -1, tag); });
}

void GlooProcessGroup::recv(Tensor& t, int src, uint32_t tag) {
  const std::string name = "recv from rank " + std::to_string(src) + " (tag " + std::to_string(tag) + ")";
  detail::check_cpu_tensor(name, t, "tensor");
  detail::check_peer(name, "source", src, size());
  ZAE_CHECK(src != rank(), name, " (gloo): a rank cannot receive from itself (rank ", rank(), "); use send_recv");
  comm_->run(name, [this, t, src, tag] {
    transfer(nullptr, -1, &t, src, tag);
    t.storage()->bump_version();
  });
}

void GlooProcessGroup::send_recv(const Tensor& out, int dst, Tensor& in, int src, uint32_t tag) {
  const std::string name = "send_recv (to rank " + std::to_string(dst) + ", from rank " + std::to_string(src) +
                           ", tag " + std::to_string(tag) + ")";
  detail::check_cpu_tensor(name, out, "outgoing tensor");
  detail::check_cpu_tensor(name, in, "incoming tensor");
  detail::check_peer(name, "destination", dst, size());
  detail::check_peer(name, "source", src, size());
  ZAE_CHECK((dst == rank()) == (src == rank()), name, " (gloo): rank ", rank(),
            " may exchange with itself only as both destination and source");
  ZAE_CHECK(dst != rank() || out.nbytes() == in.nbytes(), name,
            " (gloo): exchanging with itself needs equal sizes, got ", detail::describe_tensor(out), " and ",
            detail::describe_tensor(in));
  comm_->run(name, [this, out, dst, in, src, tag] {
    transfer(&out, dst, &in, src, tag);
    in.storage()->bump_version();
  });
}

}  // namespace zae::dist
