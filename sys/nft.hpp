// nftables through libnftables: rulesets applied to a network namespace.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

struct nft_ctx;  // libnftables' own

namespace openshell::sys {

// One libnftables context, bound to the network namespace of the thread that opened it (its
// netlink socket stays there). Keep one for a namespace's lifetime: a context's first command
// costs about 2 ms (its caches and the kernel's ruleset dump), later ones about 0.1 ms.
// libnftables itself is loaded on first use (dlopen), not linked: it and the five libraries it
// pulls in cost every process that links them ~1.3 ms of loading before main, which for the
// supervisor is on a sandbox's start path; loaded here, it happens on the namespace's own thread.
class Nft {
 public:
  static Result<Nft> open();
  // Runs `ruleset` (nft syntax) as one atomic transaction: all of it applies or none does.
  // On failure the Error carries libnftables' own message.
  Status apply(const std::string& ruleset);

 private:
  struct Free {
    void operator()(nft_ctx* ctx) const;
  };
  std::unique_ptr<nft_ctx, Free> ctx_;
};

// A context for one ruleset: Nft::open().apply(ruleset).
Status nft_apply(const std::string& ruleset);

// Makes the calling thread's network namespace a sandbox's: lo up, `v4_address` on it with the
// capture routes (add_capture_routes), then `ruleset` through `nft`, a context opened in this
// namespace.
Status set_up_capture(Nft& nft, const std::array<uint8_t, 4>& v4_address,
                      const std::string& ruleset);

// set_up_capture in a new network namespace of its own, made on a short-lived thread (the
// caller's threads stay where they are); returns that namespace, which lives as long as the
// descriptor does. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN.
Result<UniqueFd> new_capture_netns(const std::array<uint8_t, 4>& v4_address,
                                   const std::string& ruleset);

}  // namespace openshell::sys
