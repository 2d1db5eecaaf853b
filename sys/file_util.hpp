// Small, bounded file reads and writes for kernel interface files (/proc, /sys/fs/cgroup).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "core/result.hpp"

namespace openshell::sys {

// Reads at most max_bytes; kernel files are small and we never trust them to be.
Result<std::string> read_file(const std::string& path, size_t max_bytes = 64 * 1024);
// One write(2) of the whole content, as kernel interface files expect.
Status write_file(const std::string& path, std::string_view content);

// What a replacement survives. kPowerLoss fsyncs the file and its directory (~1 ms on a plain
// disk); kProcessCrash does not: a crash of ours leaves the old content or the new one, a power
// loss may leave either or an empty file (readers of state files must cope anyway). For state
// that dies with the machine: a `run` sandbox does not outlive a reboot.
enum class Durability { kPowerLoss, kProcessCrash };

// Atomic replacement of `path` (state files): the content goes to a temporary file in the same
// directory, and is renamed over `path`. Never a mix of old and new; the temporary is removed on
// failure.
Status write_file_atomic(const std::string& path, std::string_view content, mode_t mode,
                         Durability durability = Durability::kPowerLoss);

// One write to a descriptor whose reader may be gone: a socket gets MSG_NOSIGNAL, so a dead
// reader costs EPIPE, not our life to SIGPIPE. Other descriptors get a plain write.
bool write_no_sigpipe(int fd, std::string_view data);

}  // namespace openshell::sys
