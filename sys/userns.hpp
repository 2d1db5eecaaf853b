// User namespace id maps, written by the parent for a child that has just unshared its userns.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "core/result.hpp"

namespace openshell::sys {

// Maps exactly one uid and one gid: inside -> outside. Root inside stays unmapped, so nothing
// in the sandbox can ever act as, or create files owned by, uid 0.
Status write_single_id_maps(pid_t pid, uint32_t inside_uid, uint32_t outside_uid,
                            uint32_t inside_gid, uint32_t outside_gid);

}  // namespace openshell::sys
