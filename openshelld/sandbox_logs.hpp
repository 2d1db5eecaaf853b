// A sandbox's log directory, log_dir/sandboxes/<name>: its OCSF events (events.jsonl, rotated
// to events.jsonl.1, written by its supervisor and read back here), its supervisor's own log
// under the direct driver; and log_dir/removed/, where a removed sandbox's directory goes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/ocsf.hpp"

namespace openshell::daemon {

class SandboxLogs {
 public:
  SandboxLogs(std::string log_dir, unsigned removed_kept)
      : log_dir_(std::move(log_dir)), removed_kept_(removed_kept) {}

  [[nodiscard]] std::string dir(const std::string& sandbox) const {
    return log_dir_ + "/sandboxes/" + sandbox;
  }
  [[nodiscard]] std::string events_file(const std::string& sandbox) const {
    return dir(sandbox) + "/events.jsonl";
  }
  // Oldest first: the last `max` with time >= since_unix_ms, of class `class_uid` (0: any),
  // only Blocked ones when denied_only. A torn last line (a supervisor writing) is passed by.
  [[nodiscard]] std::vector<std::string> events(const std::string& sandbox, size_t max,
                                                uint32_t class_uid, bool denied_only,
                                                int64_t since_unix_ms) const;
  // An event of the daemon's own about a sandbox: to its events file (one O_APPEND write: lines
  // stay whole beside the supervisor's, and only the supervisor rotates), and to the journal.
  void emit(const ocsf::Event& event, bool journal) const;
  // The directory leaves the name (a later sandbox of that name, perhaps another owner's, must
  // not read those events as its own) for log_dir/removed/<unix-ms>-<name>, where the newest
  // `removed_kept` stay; with none kept it is deleted.
  void retire(const std::string& sandbox) const;

 private:
  std::string log_dir_;
  unsigned removed_kept_;
};

}  // namespace openshell::daemon
