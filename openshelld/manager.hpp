// The sandbox manager: every sandbox's lifecycle over the registry, a Driver (how supervisors
// are started) and the supervisors' control sockets. The bus layer (bus.cpp) authorizes callers
// and calls in here; nothing here knows about D-Bus, nor which driver it has.
//
// Everything a sandbox waits for is a Watch on the event loop, held by that sandbox's state:
// its supervisor's status channel while it starts ("launched PID", and a run's "exit N"), its
// supervisor's pidfd while it runs (its end, planned or not), the replies of its control
// socket. Nothing here blocks the loop; calls that wait answer through a callback from it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/policy.hpp"
#include "core/services.hpp"
#include "core/result.hpp"
#include "core/unique_fd.hpp"
#include "openshelld/config.hpp"
#include "openshelld/driver.hpp"
#include "openshelld/policies.hpp"
#include "openshelld/provider_store.hpp"
#include "openshelld/registry.hpp"
#include "openshelld/sandbox_logs.hpp"
#include "openshelld/supervisor_client.hpp"
#include "openshelld/watch.hpp"

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
  std::vector<std::string> providers;  // attached providers (root's sandboxes only)
  std::vector<std::string> routes;     // inference routes, overriding the policy's (root only)
};

class Manager {
 public:
  // How long a supervisor has to report "launched", and a stopping one to be gone (then it is
  // killed).
  static constexpr auto kStartTimeout = std::chrono::seconds(15);
  static constexpr auto kStopTimeout = std::chrono::seconds(15);

  Manager(Config config, sd_event* event, std::unique_ptr<Driver> driver);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Told of every change, from the loop (the bus turns them into signals): a sandbox's phase or
  // reason (phase "removed" once it is gone), and a new policy revision in force.
  struct Listener {
    std::function<void(const SandboxRecord&)> changed;
    std::function<void(const SandboxRecord&)> removed;
    std::function<void(const SandboxRecord&)> revised;
  };
  void set_listener(Listener listener) { listener_ = std::move(listener); }
  // Whoever waits for a command's end goes (the bus, before it closes): their callbacks are
  // dropped uncalled; the commands themselves run on in their sandboxes.
  void drop_commands();

  // Loads the registry; re-adopts the sandboxes whose supervisor still runs (the driver checks
  // each is the one it was), marks the others stopped with how they ended, removes ended runs.
  // Returns the problems found (corrupt records and the like).
  Result<std::vector<std::string>> start();

  // Creates the sandbox and starts its supervisor; `done` comes from the loop once the
  // supervisor reports "launched" on its status channel (or failed, or did not within
  // kStartTimeout). Until then the sandbox reads as creating; exec, start and policy changes of
  // it are refused, and a stop or removal waits for the start's end.
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
  // Stops the sandbox (shutdown over its control socket; killed after kStopTimeout) and, for
  // remove, its record, revisions and workspace go; `done` from the loop once the supervisor is
  // gone, or at once when it was not running. Meanwhile the sandbox reads as running, start and
  // exec are refused, and another stop or removal of it joins this one.
  void remove(const std::string& name, std::function<void(Status)> done);
  void stop(const std::string& name, std::function<void(Status)> done);
  // Starts a stopped sandbox again: the same name, command, workspace and policy revision;
  // `done` as create's. false: it was running, nothing was done.
  void start(const std::string& name, std::function<void(Result<bool>)> done);

  // Runs a command in the sandbox with the given stdio (stdin, stdout, stderr; or one pty slave,
  // which becomes its controlling terminal); `done` is called from the loop. Returns a ticket
  // for abandon() and signal().
  Result<uint64_t> exec(const std::string& name, std::vector<std::string> argv,
                        std::vector<std::string> env, std::string cwd, std::vector<UniqueFd> stdio,
                        std::function<void(const ExecOutcome&)> done);
  // One command in a new sandbox, as its main process with the caller's stdio (policy: named,
  // or the caller's own `text`); `done` gets its exit status once the sandbox has ended and
  // been removed. Under a driver that cannot pass stdio to a supervisor: create, exec, delete.
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
  // every running sandbox whose policy changed (a change outside [network_policies] is reported
  // as needing re-creation and not applied). Each applied change is a new revision. `done`
  // from the loop once every supervisor answered (or kReplyTimeout passed).
  struct ReloadReport {
    std::vector<std::string> diagnostics;  // non-empty: nothing was applied
    std::vector<std::string> applied;      // sandboxes now on a new revision
    std::vector<std::string> needs_recreation;
    std::vector<std::string> failed;  // "name: why"
  };
  void reload_policies(std::function<void(ReloadReport)> done);

  // A sandbox's own policy, apart from the named one it came from (which then no longer applies
  // to it on reload: it is pinned). Validated whole; a running sandbox takes only a change to
  // [network_policies] (anything else: operation_not_supported naming each key, re-create it),
  // a stopped one gets the whole policy at its next start. Each is a new revision; `done` gets
  // its number.
  using Revised = std::function<void(Result<uint64_t>)>;
  void set_policy(const std::string& name, const std::string& text, const std::string& source,
                  Revised done);
  // Applies an earlier revision's text again, as a new revision (0: the one before the current).
  void rollback_policy(const std::string& name, uint64_t revision, Revised done);
  // The text of one of the sandbox's revisions (0: the current one).
  Result<std::string> sandbox_policy(const std::string& name, uint64_t revision) const;
  Result<std::vector<RevisionInfo>> policy_history(const std::string& name) const;

  // An O_PATH handle on the sandbox's workspace, for upload and download: the caller copies with
  // its own credentials (the workspace is its own), it just could not reach it otherwise.
  Result<UniqueFd> open_workspace(const std::string& name) const;
  // A pty master of the sandbox's own devpts (openshellctl exec --tty, connect): its slave is
  // /dev/pts/N in there, owned by the agent.
  void open_pty(const std::string& name, std::function<void(Result<UniqueFd>)> done);
  [[nodiscard]] std::vector<std::string> policy_names() const;

  // The sandbox's OCSF events (JSON lines), oldest first: the last `max` with time >=
  // since_unix_ms, of class `class_uid` (0: any), only Blocked ones when denied_only.
  Result<std::vector<std::string>> events(const std::string& name, size_t max, uint32_t class_uid,
                                          bool denied_only, int64_t since_unix_ms) const;
  Result<std::string> policy_text(const std::string& name) const;

  // --- providers and inference routes (issue 16); the bus lets only root change them ---
  // A new provider (create) or, with `create` false, new values for some of an existing one's
  // keys (and its type unless `keep_type`); every running sandbox gets the change at once.
  Status set_provider(const providers::Provider& provider, bool create, bool keep_type = false);
  Status delete_provider(const std::string& name);
  // What may be shown of a provider (never a value), with the sandboxes it is attached to
  // (of those, only `viewer`'s own when that is not root).
  Result<nlohmann::json> provider_info(const std::string& name,
                                       std::optional<uid_t> viewer = std::nullopt) const;
  [[nodiscard]] nlohmann::json provider_list(std::optional<uid_t> viewer = std::nullopt) const;
  Status set_route(const inference::Route& route);
  Status delete_route(const std::string& name);
  Result<nlohmann::json> route_info(const std::string& name) const;
  [[nodiscard]] nlohmann::json route_list() const;

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] const char* driver() const { return driver_->name(); }

 private:
  struct Sandbox;
  struct Command;
  // The policy a new sandbox starts from: a named one, or the caller's own text (no name).
  struct NewPolicy {
    std::string name;    // "" for the caller's own
    std::string text;
    std::string source;  // for diagnostics: the file, or what the caller called it
    std::string origin;  // the first revision's note
  };
  Result<NewPolicy> new_policy(const std::string& policy, const std::string& text,
                               const std::string& source) const;
  // The sandbox `name`, or ENOENT "no sandbox NAME" (the one way that error is made).
  Result<Sandbox*> find(const std::string& name) const;
  // Validates everything about a new sandbox and stores its first revision: the sandbox,
  // creating, in sandboxes_ (its record is saved once its supervisor has launched or failed).
  Result<Sandbox*> admit(const std::string& name, const NewPolicy& np,
                         std::vector<std::string> command, uid_t owner, SandboxOptions options,
                         bool ephemeral);
  // A non-root owner's limits (the policy's, else the config's defaults) within the config's
  // caps; EPERM naming each excess otherwise.
  Status check_limits(const policy::Policy& policy, uid_t owner) const;
  // The revision in force, parsed once (and again only when it changes).
  Result<std::shared_ptr<const policy::Policy>> policy_of(Sandbox& sandbox) const;

  void create_from(const std::string& name, Result<NewPolicy> np, std::vector<std::string> command,
                   uid_t owner, SandboxOptions options, Created done);
  // The sandbox failed to start: failed, with why, and saved.
  void mark_failed(Sandbox& sandbox, const Error& why, std::optional<int> exit_code);
  // Starts the supervisor (a run's: with the caller's stdio and its command's extra env);
  // `launched` from the loop with the outcome. A run's sandbox keeps its status channel after.
  struct LaunchEnd {
    Status status;
    std::optional<int> exit_code;  // the supervisor's "exit N", when it said it
  };
  // An error here is a start that never began (nothing to wait for).
  Status launch(Sandbox& sandbox, std::vector<UniqueFd> stdio, std::vector<std::string> run_env,
                std::function<void(const LaunchEnd&)> launched);
  void on_status(const std::string& name);
  void end_launch(const std::string& name, LaunchEnd end);
  // The supervisor's pidfd turned readable: the sandbox ended (planned or not).
  void on_supervisor_gone(const std::string& name);
  void watch_supervisor(Sandbox& sandbox);
  // Why a supervisor that never launched went: its events, else its last words.
  std::string start_failure(const std::string& name);

  void stop_then(const std::string& name, bool remove_after, std::function<void(Status)> done);
  void begin_stop(Sandbox& sandbox);
  void end_stop(const std::string& name);
  // Removes a sandbox whose supervisor no longer runs: record, revisions, workspace, logs.
  Status forget(const std::string& name);
  Status refuse_if_busy(const Sandbox& sandbox) const;  // starting or stopping
  // Saves the record and tells the listener.
  Status changed(Sandbox& sandbox, sys::Durability durability = sys::Durability::kPowerLoss);

  // A run's end: the reply to its caller, then its sandbox goes.
  void end_run(uint64_t ticket, const ExecOutcome& outcome);
  void finish_command(uint64_t ticket, const ExecOutcome& outcome);
  Result<uint64_t> exec_into(uint64_t ticket, const std::string& name,
                             std::vector<std::string> argv, std::vector<std::string> env,
                             std::string cwd, std::vector<UniqueFd> stdio);
  void on_exec_reply(uint64_t ticket);

  // What `next` changes outside [network_policies] against the sandbox's revision in force,
  // key by key (policy::static_differences).
  std::vector<std::string> static_changes(Sandbox& sandbox, const policy::Policy& next) const;
  // Pushes the policy to the running supervisor (if it runs), then records it as the next
  // revision.
  void apply_revision(Sandbox& sandbox, std::string text,
                      std::shared_ptr<const policy::Policy> parsed, std::string origin,
                      Revised done);
  // Stores what a sandbox now enforces as its next revision, and its record. kProcessCrash for
  // a batch (a reload) that ends with registry_.sync().
  Status record_revision(Sandbox& sandbox, const std::string& text,
                         std::shared_ptr<const policy::Policy> parsed, const std::string& origin,
                         sys::Durability durability);

  // A provider by name: the config's (systemd credentials), else the store's.
  Result<providers::Provider> find_provider(const std::string& name) const;
  // What the sandbox's proxy holds: its attached providers, its routes (its own, else its
  // policy's, else default_routes; a non-root owner's only among default_routes) and their
  // providers, its policy's privacy.
  Result<services::Services> services_of(const Sandbox& sandbox) const;
  // Sends each running sandbox (or only `name`) its services; failures are logged.
  void push_services(const std::string& name = "");

  Config config_;
  sd_event* event_;
  std::unique_ptr<Driver> driver_;
  Registry registry_;
  SandboxLogs logs_;
  SupervisorClient supervisors_;
  std::optional<ProviderStore> providers_;  // opened by start()
  std::optional<RouteStore> routes_;
  Listener listener_;
  bool journal_ = false;  // journald listens: events go there too
  std::map<std::string, std::unique_ptr<Sandbox>> sandboxes_;
  std::map<uint64_t, std::unique_ptr<Command>> commands_;
  uint64_t next_ticket_ = 1;
};

}  // namespace openshell::daemon
