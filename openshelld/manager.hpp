// The sandbox manager: lifecycle over the registry and the supervisors' control sockets. The
// bus layer (bus.cpp) authorizes callers and calls in here; nothing here knows about D-Bus.
//
// Drivers: systemd (a transient unit per sandbox, systemd_driver.hpp) when PID 1 is systemd,
// direct (a detached `openshell-supervisor run --control ...` in its own session) otherwise.
// Both outlive the daemon; everything after the start goes through the control socket, the
// same for both.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/ocsf.hpp"
#include "core/result.hpp"
#include "core/unique_fd.hpp"
#include "openshelld/config.hpp"
#include "openshelld/netns_spare.hpp"
#include "openshelld/policies.hpp"
#include "openshelld/registry.hpp"
#include "openshelld/systemd_driver.hpp"

struct sd_event;

namespace openshell::daemon {

struct ExecOutcome {
  bool ok = false;
  // With ok, the command's; without, 126 or 127 when the command could not be run (its fault,
  // reported as a shell does), else -1.
  int exit_code = -1;
  int signal = 0;
  std::string error;
};

// What a caller may choose about a new sandbox besides its policy and command.
struct SandboxOptions {
  std::string workdir;  // a host directory of the caller's at /sandbox; "": a workspace of its own
  bool workdir_readonly = false;
  std::vector<std::string> env;  // K=V for the main process (create; run passes its own)
};

class Manager {
 public:
  Manager(Config config, sd_event* event);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Loads the registry; re-adopts sandboxes whose supervisor still answers, marks the others
  // stopped with the reason. Returns the problems found (corrupt records and the like).
  Result<std::vector<std::string>> start();

  // Creates the sandbox and starts its supervisor; `done` comes from the event loop once the
  // supervisor's control socket answers (or it failed): a supervisor can take up to 15 s (a
  // policy path on a hung mount), and the daemon serves every other call meanwhile. Until then
  // the sandbox reads as creating, and stop, delete, start, exec and policy changes of it are
  // refused.
  using Created = std::function<void(Result<SandboxRecord>)>;
  void create(const std::string& name, const std::string& policy, std::vector<std::string> command,
              uid_t owner, SandboxOptions options, Created done);
  // The same with the caller's own policy text (`source` names it in diagnostics); the sandbox
  // has no named policy, so reloads pass it by.
  void create_with_text(const std::string& name, const std::string& text, const std::string& source,
                        std::vector<std::string> command, uid_t owner, SandboxOptions options,
                        Created done);
  [[nodiscard]] std::vector<SandboxRecord> list() const;
  Result<SandboxRecord> get(const std::string& name) const;
  // Stops the sandbox (shutdown over its control socket, then waits for the supervisor) and
  // removes its record, revisions and workspace; `done` gets the outcome.
  void remove(const std::string& name, std::function<void(Status)> done);
  // Stops the main process (and so the sandbox); the record, revisions and workspace stay.
  void stop(const std::string& name, std::function<void(Status)> done);
  // Both wait for the supervisor on the event loop, not in it: its agent has up to 15 s to end
  // (then it is killed), and the daemon serves every other call meanwhile. `done` comes from the
  // loop once the supervisor is gone, or at once when it was not running. Until then the
  // sandbox reads as running, start and exec are refused, and another stop or removal of it
  // joins this one.
  // Starts a stopped sandbox again: the same name, command, workspace and policy revision.
  // false: it was running, nothing was done.
  Result<bool> start(const std::string& name);
  // Runs a command in the sandbox with the given stdio (stdin, stdout, stderr; or one pty slave,
  // which becomes its controlling terminal); `done` is called from the event loop. Returns a
  // ticket for abandon().
  Result<uint64_t> exec(const std::string& name, std::vector<std::string> argv,
                        std::vector<std::string> env, std::string cwd, std::vector<UniqueFd> stdio,
                        std::function<void(const ExecOutcome&)> done);

  // One command in a new sandbox, as its main process with the caller's stdio (policy: named,
  // or the caller's own `text`); `done` gets its exit status once the sandbox has ended and
  // been removed. Under the systemd driver: create, exec, delete. Returns a ticket for
  // abandon().
  Result<uint64_t> run(const std::string& policy, const std::string& text,
                       const std::string& source, std::vector<std::string> argv,
                       std::vector<std::string> env, std::vector<UniqueFd> stdio, uid_t owner,
                       SandboxOptions options, std::function<void(const ExecOutcome&)> done);

  // Whoever asked for exec or run `ticket` went away: an exec's command is killed (its control
  // connection closes), a run's sandbox is shut down (and then removed as usual). `done` still
  // comes, for nobody. Nothing if it has ended.
  void abandon(uint64_t ticket);
  // A signal for the command of exec or run `ticket` (its caller's ^C): an exec's process group,
  // or a run's main process. Nothing once it has ended.
  Status signal(uint64_t ticket, int sig);

  // Re-reads every named policy; only if all are valid, pushes the new network_policies to
  // every running sandbox whose policy text changed (a change outside [network_policies] is
  // reported as needing re-creation and not applied). Each applied change is a new revision.
  struct ReloadReport {
    std::vector<std::string> diagnostics;  // non-empty: nothing was applied
    std::vector<std::string> applied;      // sandboxes now on a new revision
    std::vector<std::string> needs_recreation;
    std::vector<std::string> failed;  // "name: why"
  };
  ReloadReport reload_policies();

  // A sandbox's own policy, apart from the named one it came from (which then no longer applies
  // to it on reload: it is pinned). Validated whole; a running sandbox takes only a change to
  // [network_policies] (anything else: operation_not_supported, re-create it), a stopped one
  // gets the whole policy at its next start. Each is a new revision; returns its number.
  Result<uint64_t> set_policy(const std::string& name, const std::string& text,
                              const std::string& source);
  // Applies an earlier revision's text again, as a new revision (0: the one before the current).
  Result<uint64_t> rollback_policy(const std::string& name, uint64_t revision);
  // The text of one of the sandbox's revisions (0: the current one).
  Result<std::string> sandbox_policy(const std::string& name, uint64_t revision) const;
  Result<std::vector<RevisionInfo>> policy_history(const std::string& name) const;

  // An O_PATH handle on the sandbox's workspace, for upload and download: the caller copies with
  // its own credentials (the workspace is its own), it just could not reach it otherwise.
  Result<UniqueFd> open_workspace(const std::string& name) const;
  // A pty master of the sandbox's own devpts (openshellctl exec --tty, connect): its slave is
  // /dev/pts/N in there, owned by the agent.
  Result<UniqueFd> open_pty(const std::string& name) const;
  [[nodiscard]] std::vector<std::string> policy_names() const;

  // The sandbox's OCSF events (JSON lines), oldest first: the last `max` with time >=
  // since_unix_ms, of class `class_uid` (0: any), only Blocked ones when denied_only.
  Result<std::vector<std::string>> events(const std::string& name, size_t max, uint32_t class_uid,
                                          bool denied_only, int64_t since_unix_ms) const;
  Result<std::string> policy_text(const std::string& name) const;

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] const char* driver() const { return systemd_ ? "systemd" : "direct"; }

 private:
  struct PendingExec;
  std::string control_socket(const std::string& name) const;
  std::string events_file(const std::string& name) const;
  // The policy a new sandbox starts from: a named one, or the caller's own text (no name).
  struct NewPolicy {
    std::string name;    // "" for the caller's own
    std::string text;
    std::string source;  // for diagnostics: the file, or what the caller called it
    std::string origin;  // the first revision's note
  };
  Result<NewPolicy> new_policy(const std::string& policy, const std::string& text,
                               const std::string& source) const;
  Result<SandboxRecord> create_from(const std::string& name, const NewPolicy& np,
                                    std::vector<std::string> command, uid_t owner,
                                    SandboxOptions options, bool ephemeral = false);
  // A non-root owner's limits (the policy's, else the config's defaults) within the config's
  // caps; EPERM naming each excess otherwise.
  Status check_limits(const policy::Policy& policy, uid_t owner) const;
  // Validates the policy and stores its first revision; fills in the record (phase creating),
  // which mark_running (or the failure path) saves.
  Status prepare_record(const std::string& name, const NewPolicy& np, SandboxRecord& record,
                        std::vector<std::string> command, uid_t owner, SandboxOptions options);
  Status mark_running(SandboxRecord& record, pid_t supervisor);
  // A run's sandbox found by a restarted daemon: whoever ran it is gone with the old daemon, so
  // the sandbox goes once its command ends (at once if it has ended).
  void adopt_ephemeral(const std::string& name, pid_t supervisor);
  void remove_orphan(const std::string& name);
  // A run's attachments: the caller's stdio for the main process, the status socket (fd 3 in
  // the supervisor: --status-fd), extra environment.
  struct Attach {
    std::vector<UniqueFd> stdio;
    UniqueFd status_write;
    std::vector<std::string> env;
  };
  // Starts the supervisor with the driver and, with `wait`, waits for its control socket;
  // returns its pid (-1 for a unit not waited for). With `attach` (direct driver only) it
  // returns at once: the status socket says the rest.
  Result<pid_t> spawn_supervisor(const SandboxRecord& record, const std::string& policy_file,
                                 Attach* attach = nullptr, bool wait = true);
  std::string supervisor_log_hint(const std::string& name) const;
  // A supervisor that did not answer within kStartTimeout: killed (if we know its pid), and why.
  Error start_timed_out(const std::string& name, pid_t supervisor) const;
  // The record once its supervisor is up (running) or not (failed, with the reason).
  Result<SandboxRecord> finish_create(SandboxRecord record, Result<pid_t> supervisor);
  // The direct driver's start; `netns`, if any, is passed on as the supervisor's --netns-fd.
  static Result<pid_t> spawn_detached(std::vector<std::string> args, const std::string& log_file,
                                      const Attach* attach, UniqueFd netns);
  void refresh(SandboxRecord& record) const;
  // A removed sandbox's log directory leaves its name (a later sandbox of that name, perhaps
  // another owner's, must not read those events as its own) for log_dir/removed/, where the
  // newest removed_logs_kept stay.
  void retire_logs(const std::string& name);
  // An event of the daemon's own about a sandbox: to its events file, and to the journal
  // under systemd.
  void emit(const ocsf::Event& event);
  // What `text` changes outside [network_policies] against the sandbox's revision in force,
  // key by key (policy::static_differences).
  std::vector<std::string> static_changes(const SandboxRecord& record, const std::string& text) const;
  // Pushes text to the running supervisor (if it runs) and records it as the next revision.
  Result<uint64_t> apply_revision(SandboxRecord& record, const std::string& text,
                                  const std::string& origin);
  // Stores what a sandbox now enforces as its next revision, and its record. kProcessCrash for
  // a batch (a reload) that ends with registry_.sync().
  Status record_revision(SandboxRecord& record, const std::string& text, const std::string& origin,
                         sys::Durability durability);
  struct Starting;  // a new sandbox's supervisor, polled until its control socket answers
  void create_later(const std::string& name, const NewPolicy& np, std::vector<std::string> command,
                    uid_t owner, SandboxOptions options, Created done);
  void poll_start(const std::string& name);
  // Up when its control socket answers: its pid; an error if it is gone; nullopt: not yet.
  Result<std::optional<pid_t>> started(const SandboxRecord& record, pid_t supervisor);
  struct Stopping;  // a supervisor asked to shut down, watched through its pidfd
  void stop_then(const std::string& name, bool remove_after, std::function<void(Status)> done);
  void end_stop(const std::string& name);
  // The record's end once its supervisor is gone: stopped, or removed with remove_after.
  Status after_stop(const std::string& name, bool remove_after);
  // Removes a sandbox whose supervisor no longer runs (an ended run's): record, revisions,
  // workspace, logs.
  Status forget(const std::string& name);
  Status refuse_if_busy(const std::string& name) const;  // starting or stopping

  Config config_;
  sd_event* event_;
  Registry registry_;
  std::optional<SystemdDriver> systemd_;  // set when the systemd driver is in use
  bool journal_ = false;                  // journald listens: events go there too
  std::map<std::string, SandboxRecord> sandboxes_;
  NetnsSpare spare_;  // for the direct driver's next supervisor (and the hooks, either way)
  std::map<PendingExec*, std::unique_ptr<PendingExec>> execs_;
  uint64_t next_ticket_ = 1;
  struct Orphan;  // an adopted run's sandbox, watched through its supervisor's pidfd
  std::map<std::string, std::unique_ptr<Orphan>> orphans_;
  std::map<std::string, std::unique_ptr<Stopping>> stopping_;
  std::map<std::string, std::unique_ptr<Starting>> starting_;
};

}  // namespace openshell::daemon
