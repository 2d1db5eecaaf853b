// openshelld's durable state (issue 4 item 4): one JSON record per sandbox under
// <state_dir>/sandboxes/, each written atomically (sys::write_file_atomic), and every policy
// revision applied to a sandbox under <state_dir>/revisions/<name>/<n>.toml. A record that
// cannot be read is reported and skipped, never fatal: the daemon keeps serving the others.
#pragma once

#include <sys/types.h>  // uid_t

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"
#include "sys/file_util.hpp"

namespace openshell::daemon {

enum class Phase { kCreating, kRunning, kStopped, kFailed };
[[nodiscard]] std::string_view to_string(Phase phase);

struct SandboxRecord {
  std::string name;
  uid_t owner_uid = 0;
  std::string policy;              // named policy it was created from
  uint64_t revision = 0;           // of that policy, as applied to this sandbox
  std::vector<std::string> command;  // its main process
  Phase phase = Phase::kCreating;
  std::optional<int> exit_code;    // when stopped
  std::string reason;              // why it stopped or failed, for a human
  int64_t created_unix_ms = 0;
  // Its policy was set directly (policy set, rollback): reloads of the named policy pass it by.
  bool pinned = false;
  // Where the revision in force came from ("created from policy default", "set from FILE",
  // "rollback to 2"): what `sandbox list` shows for a sandbox no longer on its named policy.
  std::string source;
  // Made by `run` for one command: its state is written without fsync (it cannot outlive the
  // machine), and a daemon that finds it ended while nobody watched removes it.
  bool ephemeral = false;
  // A host directory of the owner's at /sandbox instead of a workspace under the state
  // directory (sandbox create --workdir): absolute, free of symlinks, checked at every start.
  std::string workdir;
  bool workdir_readonly = false;
  std::vector<std::string> env;    // K=V for the main process (sandbox create --env)
  std::vector<std::string> providers;  // attached (create --provider): names, never values
  std::vector<std::string> routes;     // inference routes (create --inference); empty: policy's
  // Its supervisor's pid while it runs: for display, and for a restarted daemon to find it
  // again through its driver (Driver::adopt checks it is still that supervisor); never
  // signalled as such.
  int supervisor_pid = -1;
};

// How durably a sandbox's state is written: as asked, except a run's, which is never fsynced.
inline sys::Durability durability_of(const SandboxRecord& record,
                                     sys::Durability wanted = sys::Durability::kPowerLoss) {
  return record.ephemeral ? sys::Durability::kProcessCrash : wanted;
}

nlohmann::json to_json(const SandboxRecord& record);
// Everything validated: a record is data from disk, and disks lie after crashes.
Result<SandboxRecord> record_from_json(const nlohmann::json& j);

// One entry of a sandbox's policy history: when a revision was applied, and how ("created from
// policy default", "reload of policy default", "set from FILE", "rollback to 2").
struct RevisionInfo {
  uint64_t number = 0;
  int64_t time_unix_ms = 0;  // 0 when unknown
  std::string origin;
};

// Names are checked once, where they come in: the manager admits only valid ones, and
// record_from_json refuses a record with any other. Everything here trusts them.
class Registry {
 public:
  explicit Registry(std::string state_dir);

  // Creates the directories (0700) if missing.
  Status init() const;

  struct Loaded {
    std::vector<SandboxRecord> records;
    std::vector<std::string> problems;  // "<file>: <why>" for each record skipped
  };
  [[nodiscard]] Loaded load_all() const;

  // kPowerLoss by default; a run's (ephemeral) record is never fsynced. A batch of writes with
  // kProcessCrash is made durable at once by sync().
  Status save(const SandboxRecord& record,
              sys::Durability durability = sys::Durability::kPowerLoss) const;
  // Everything written under the state directory so far, to disk (one syncfs).
  Status sync() const;
  Status remove(const std::string& name) const;  // the record and its revisions

  // Stores policy text as the next revision for a sandbox, with where it came from (in
  // <n>.json beside <n>.toml); returns its number (1, 2, ...).
  Result<uint64_t> add_revision(const std::string& name, const std::string& policy_toml,
                                const std::string& origin,
                                sys::Durability durability = sys::Durability::kPowerLoss) const;
  [[nodiscard]] std::vector<uint64_t> revisions(const std::string& name) const;
  // Every revision, oldest first. A missing or unreadable <n>.json gives time 0 and origin "".
  [[nodiscard]] std::vector<RevisionInfo> history(const std::string& name) const;
  Result<std::string> revision(const std::string& name, uint64_t number) const;
  [[nodiscard]] std::string revision_path(const std::string& name, uint64_t number) const;

  [[nodiscard]] std::string workspace(const std::string& name) const;  // <state>/workspaces/<name>

 private:
  std::string record_path(const std::string& name) const;
  std::string state_dir_;
};

}  // namespace openshell::daemon
