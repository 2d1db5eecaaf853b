// Copying files and directories into and out of a sandbox's workspace (`upload`, `download`).
//
// The daemon hands openshellctl an O_PATH descriptor of the workspace (OpenWorkspace); the copy
// runs here, with the caller's own credentials, so it can touch nothing the caller could not.
// The workspace's contents are the agent's: every path inside it is resolved with openat2
// RESOLVE_BENEATH (a symlink that leads outside fails with EXDEV), every final component is
// opened with O_NOFOLLOW, and a symlink is copied only when it stays inside the tree being
// copied. Anything else (escaping symlinks, fifos, devices) is refused by name and the rest
// goes on; the caller reports the refusals and exits 1.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace openshell::ctl {

struct CopyReport {
  uint64_t files = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t bytes = 0;
  std::vector<std::string> refused;  // "path: why"
};

// A path inside the workspace as the user writes it: relative to /sandbox, or absolute under
// /sandbox. Empty: the workspace itself. Refused: any other absolute path, and "..".
Result<std::string> workspace_relative(const std::string& path);

// Copies the host's `from` (a file, a directory tree, or a symlink that stays inside it) to
// `to` in the workspace: `to` names the copy, and its parent must exist. When root copies into
// a sandbox, the copies are given to the workspace's owner.
Status upload(const std::string& from, int workspace, const std::string& to, CopyReport* report);
// Copies `from` in the workspace to the host's `to` (which names the copy).
Status download(int workspace, const std::string& from, const std::string& to,
                CopyReport* report);

struct Global;
// The commands' common part: checks `remote` (workspace_relative), opens the sandbox's workspace
// through the daemon (OpenWorkspace), runs `copy` on it, and prints what was copied (a line, or
// JSON) and each refusal. Returns 0, or 1 when anything failed or was refused.
int run_copy(const Global& global, const std::string& sandbox, const std::string& remote,
             const std::function<Status(int workspace, const std::string& relative,
                                        CopyReport* report)>& copy);

// Whether a symlink at depth `depth` below the copy's root (0: in the root directory) with
// target `target` resolves inside that root: relative, and never climbing above it.
bool link_stays_inside(const std::string& target, int depth);

}  // namespace openshell::ctl
