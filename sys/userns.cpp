#include "sys/userns.hpp"

#include <string>

#include "sys/file_util.hpp"

namespace openshell::sys {

Status write_single_id_maps(pid_t pid, uint32_t inside_uid, uint32_t outside_uid,
                            uint32_t inside_gid, uint32_t outside_gid) {
  const std::string base = "/proc/" + std::to_string(pid);
  if (auto st = write_file(base + "/uid_map",
                           std::to_string(inside_uid) + " " + std::to_string(outside_uid) + " 1\n");
      !st)
    return st;
  return write_file(base + "/gid_map",
                    std::to_string(inside_gid) + " " + std::to_string(outside_gid) + " 1\n");
}

}  // namespace openshell::sys
