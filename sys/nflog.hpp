// A netlink socket bound to an NFLOG group (nfnetlink_log) in the calling thread's network
// namespace: what nftables' `log group N` statements send arrives here (core/nflog parses it).
#pragma once

#include <cstdint>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell::sys {

// Binds `group`, asking for the first `copy_bytes` of each packet (the kernel adds the sending
// socket's uid when the packet has one).
// The socket is non-blocking. Fails if the kernel has no nfnetlink_log or the group is taken.
Result<UniqueFd> open_nflog(uint16_t group, uint32_t copy_bytes);

}  // namespace openshell::sys
