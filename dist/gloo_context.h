// Setting up a Gloo context for one process group: our Store seen as Gloo's rendezvous
// store, the TCP device, and the full mesh of connections. Internal to dist/.
//
// Keys: everything Gloo writes goes under "<store_prefix>/gloo/<generation>/", where the
// generation counts how many times this group (store_prefix) was formed on this store
// (from Store::add on "<store_prefix>/gloo/joined"): groups with different prefixes share
// a store, and a group destroyed and formed again with the same prefix does not read the
// stale addresses of its previous life. This needs every rank to form the group the same
// number of times per prefix (a rank whose earlier attempt failed must not retry alone).
//
// Address: Gloo listens on ZAE_GLOO_HOST when set (an address or name of this machine
// that every other rank can reach; an error when it cannot be bound), else on this
// host's name when it resolves and can be bound, else on 127.0.0.1 (one machine only).
// Invariants: the context's timeout is options.timeout, set before connecting; a rank
// that does not arrive makes the others fail within options.timeout with a zae::Error
// naming the prefix and the missing key; nothing here is used after it returns except
// the context, which the caller then uses from a single thread.
#pragma once

#include <memory>
#include <string>

#include "dist/process_group.h"

namespace gloo {
class Context;
}

namespace zae::dist {
class Store;
}

namespace zae::dist::detail {

/// The host name or address Gloo would listen on, and how it was chosen
/// ("ZAE_GLOO_HOST", "hostname" or "loopback").
struct GlooHost {
  std::string host;
  std::string source;
};
GlooHost gloo_listen_host();

/// Connects `rank` to every other rank of a group of `size` (size >= 2) through `store`.
/// Throws a zae::Error naming this rank, the prefix and Gloo's or the store's message.
std::shared_ptr<gloo::Context> connect_gloo_context(const std::shared_ptr<Store>& store, int rank, int size,
                                                    const ProcessGroupOptions& options);

}  // namespace zae::dist::detail
