#include "dist/gloo_context.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <exception>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include "dist/store.h"
#include "engine/error.h"

namespace zae::dist::detail {
namespace {

// Our Store as Gloo's rendezvous store, every key under `prefix`.
class GlooStoreAdapter final : public gloo::rendezvous::Store {
 public:
  GlooStoreAdapter(std::shared_ptr<zae::dist::Store> store, std::string prefix, std::chrono::milliseconds timeout)
      : store_(std::move(store)), prefix_(std::move(prefix)), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    store_->set(prefix_ + key, Bytes(data.begin(), data.end()));
  }

  std::vector<char> get(const std::string& key) override {
    store_->wait({prefix_ + key}, timeout_);
    const Bytes value = store_->get(prefix_ + key);
    return std::vector<char>(value.begin(), value.end());
  }

  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }

  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    std::vector<std::string> full;
    full.reserve(keys.size());
    for (const std::string& k : keys) full.push_back(prefix_ + k);
    // Gloo passes its own default (30 s) in places; never wait longer than the group's timeout.
    store_->wait(full, timeout.count() > 0 ? std::min(timeout, timeout_) : timeout_);
  }

 private:
  std::shared_ptr<zae::dist::Store> store_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
};

bool host_resolves(const std::string& host) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0) return false;
  freeaddrinfo(result);
  return true;
}

std::shared_ptr<gloo::transport::Device> make_device(const GlooHost& host, int rank, int size) {
  try {
    return gloo::transport::tcp::CreateDevice(gloo::transport::tcp::attr(host.host.c_str()));
  } catch (const std::exception& e) {
    if (host.source == "ZAE_GLOO_HOST")
      ZAE_FAIL("make_gloo_process_group on rank ", rank, " of ", size, ": cannot listen on ZAE_GLOO_HOST='", host.host,
               "': ", e.what(), " (set it to an address of this machine that every other rank can reach)");
    if (host.source == "loopback")
      ZAE_FAIL("make_gloo_process_group on rank ", rank, " of ", size, ": cannot listen on 127.0.0.1: ", e.what());
  }
  // The host name resolved but could not be bound (e.g. it maps to another interface): loopback.
  return make_device({"127.0.0.1", "loopback"}, rank, size);
}

bool is_timeout_message(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text.find("timeout") != std::string::npos || text.find("timed out") != std::string::npos;
}

}  // namespace

GlooHost gloo_listen_host() {
  if (const char* env = std::getenv("ZAE_GLOO_HOST"); env != nullptr && *env != '\0') return {env, "ZAE_GLOO_HOST"};
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0' && host_resolves(name)) return {name, "hostname"};
  return {"127.0.0.1", "loopback"};
}

std::shared_ptr<gloo::Context> connect_gloo_context(const std::shared_ptr<Store>& store, int rank, int size,
                                                    const ProcessGroupOptions& options) {
  const std::string& prefix = options.store_prefix;
  auto device = make_device(gloo_listen_host(), rank, size);
  try {
    const int64_t joined = store->add(prefix + "/gloo/joined", 1);
    const int64_t generation = (joined - 1) / size;
    GlooStoreAdapter adapter(store, prefix + "/gloo/" + std::to_string(generation) + "/", options.timeout);
    auto context = std::make_shared<gloo::rendezvous::Context>(rank, size);
    context->setTimeout(options.timeout);
    context->connectFullMesh(adapter, device);
    return context;
  } catch (const std::exception& e) {
    const Error* ours = dynamic_cast<const Error*>(&e);
    const std::string message = ours != nullptr ? ours->message() : std::string(e.what());
    ZAE_FAIL("make_gloo_process_group failed on rank ", rank, " of ", size, " (gloo, store prefix '", prefix,
             "', listening on ", device->str(), "): ", message,
             is_timeout_message(message)
                 ? std::string("; not every rank called make_gloo_process_group with this store and prefix within ") +
                       std::to_string(options.timeout.count()) + " ms"
                 : std::string());
  }
}

}  // namespace zae::dist::detail
