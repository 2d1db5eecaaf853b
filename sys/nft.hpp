// nftables through libnftables: apply a ruleset to the calling thread's network namespace.
#pragma once

#include <string>

#include "core/result.hpp"

namespace openshell::sys {

// Runs `ruleset` (nft syntax) as one atomic transaction: all of it applies or none does.
// On failure the Error carries libnftables' own message.
Status nft_apply(const std::string& ruleset);

}  // namespace openshell::sys
