#include "openshelld/manager.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/control.hpp"
#include "core/log.hpp"
#include "core/names.hpp"
#include "openshelld/outcome.hpp"
#include "openshelld/workdir.hpp"
#include "sys/file_util.hpp"
#include "sys/unix_socket.hpp"

namespace openshell::daemon {
namespace {

constexpr std::string_view kComponent = "manager";
constexpr uid_t kNobody = 65534;
constexpr size_t kMaxStatusBytes = 4096;

// Policy text from a caller: at most 1 MiB, and valid, or every diagnostic (file:line:col).
Result<std::shared_ptr<const policy::Policy>> validate_policy(const std::string& text,
                                                              const std::string& source) {
  if (text.size() > policy::kMaxPolicyFileBytes) return Error::invalid(source + ": larger than 1 MiB");
  auto parsed = policy::parse_policy_string(text, source);
  if (parsed.ok()) return parsed.policy;
  std::string all;
  for (const auto& d : parsed.diagnostics) all += (all.empty() ? "" : "\n") + d.to_string();
  return Error::invalid(all.empty() ? source + ": invalid policy" : all);
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status make_dir(const std::string& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Error{ec, "creating " + path};
  if (::chmod(path.c_str(), mode) != 0) return Error::from_errno("chmod " + path);
  return {};
}

// Every entry beneath `dir` to uid/gid `id`, links themselves (never what they point to); the
// supervisor is not running, so nothing moves meanwhile. Best effort: what fails stays.
void give_tree(const std::string& dir, uid_t id) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    if (::lchown(it->path().c_str(), id, id) != 0) continue;  // best effort
}

std::string random_run_name() {
  unsigned char bytes[4] = {};
  UniqueFd fd(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  if (fd) (void)!::read(fd.get(), bytes, sizeof bytes);
  char name[16];
  std::snprintf(name, sizeof name, "run-%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return name;
}

// The status channel's lines so far: "launched PID", then "exit N".
struct StatusLines {
  bool launched = false;
  int pid = -1;
  std::optional<int> exit_code;
};

StatusLines parse_status(const std::string& text) {
  StatusLines s;
  size_t at = 0;
  for (size_t nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
    const std::string_view line(text.data() + at, nl - at);
    if (line.starts_with("launched")) {
      s.launched = true;
      if (line.size() > 9) s.pid = std::atoi(std::string(line.substr(9)).c_str());
    } else if (line.starts_with("exit ")) {
      s.exit_code = std::atoi(std::string(line.substr(5)).c_str());
    }
  }
  return s;
}

Status no_sandbox(const std::string& name) {
  return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
}

}  // namespace

// One sandbox: its record, the policy in force, and what it waits for.
struct Manager::Sandbox {
  SandboxRecord record;
  std::shared_ptr<const policy::Policy> policy;  // of record.revision, parsed once
  sys::ProcessHandle supervisor;                 // while it runs
  Watch gone;                                    // on the supervisor's pidfd

  // The status channel: while it starts, and a run's to its end.
  UniqueFd status;
  std::string status_text;
  Watch status_watch;
  // A start under way: its deadline, and who waits for it.
  struct Launching {
    Watch deadline;
    std::function<void(const LaunchEnd&)> launched;
  };
  std::unique_ptr<Launching> launching;
  // A run's ticket: its command is this sandbox's main process.
  uint64_t run_ticket = 0;

  // A stop under way: who waits, whether the sandbox goes after, when it is killed.
  struct Stopping {
    bool remove_after = false;
    std::vector<std::function<void(Status)>> waiting;
    Watch deadline;
  };
  std::unique_ptr<Stopping> stopping;
  // Stops asked for while it started: run once the start has ended.
  std::vector<std::pair<bool, std::function<void(Status)>>> stops_waiting;
};

// An exec (its control connection) or a run waiting for the command's end.
struct Manager::Command {
  uint64_t ticket = 0;
  std::string sandbox;
  bool run = false;        // the sandbox is this command's alone, and goes with it
  bool abandoned = false;  // its caller left before it could be started
  UniqueFd connection;     // an exec's control connection
  Watch replies;
  std::function<void(const ExecOutcome&)> done;
  // A run under a driver that cannot pass stdio (create, then exec): the exec still to make.
  std::vector<std::string> argv, env;
  std::vector<UniqueFd> stdio;
};

Manager::Manager(Config config, sd_event* event, std::unique_ptr<Driver> driver)
    : config_(std::move(config)),
      event_(event),
      driver_(std::move(driver)),
      registry_(config_.state_dir),
      logs_(config_.log_dir, config_.removed_logs_kept),
      supervisors_(event, config_.runtime_dir) {}

Manager::~Manager() = default;

void Manager::drop_commands() { commands_.clear(); }

Result<Manager::Sandbox*> Manager::find(const std::string& name) const {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) return no_sandbox(name).error();
  return it->second.get();
}

Status Manager::changed(Sandbox& sandbox, sys::Durability durability) {
  auto st = registry_.save(sandbox.record, durability_of(sandbox.record, durability));
  if (listener_.changed) listener_.changed(sandbox.record);
  return st;
}

Result<std::vector<std::string>> Manager::start() {
  // Events go to the journal too where there is one (and only there: the supervisor then
  // loads libsystemd at all).
  journal_ = ::access("/run/systemd/journal/socket", F_OK) == 0;
  for (const std::string& dir :
       {config_.runtime_dir, config_.runtime_dir + "/sandboxes", config_.log_dir,
        config_.log_dir + "/sandboxes"})
    if (auto st = make_dir(dir, 0700); !st) return st.error();
  if (auto st = registry_.init(); !st) return st.error();
  auto provider_store = ProviderStore::open(config_.state_dir);
  if (!provider_store) return provider_store.error();
  providers_.emplace(std::move(*provider_store));
  auto route_store = RouteStore::open(config_.state_dir);
  if (!route_store) return route_store.error();
  routes_.emplace(std::move(*route_store));
  auto loaded = registry_.load_all();
  std::vector<std::string> ended_runs;
  for (auto& record : loaded.records) {
    auto sandbox = std::make_unique<Sandbox>();
    sandbox->record = std::move(record);
    SandboxRecord& r = sandbox->record;
    const std::string name = r.name;
    // Its supervisor by the process itself, checked by the driver to be this sandbox's: one
    // still starting has no control socket yet, and must not be taken for gone.
    bool runs = false;
    if (r.phase == Phase::kRunning || r.phase == Phase::kCreating) {
      auto process = driver_->adopt(name, r.supervisor_pid);
      if (process) {
        sandbox->supervisor = std::move(*process);
        runs = true;
        r.phase = Phase::kRunning;  // one that was starting has started, or ends and says so
      }
    }
    // A run whose caller went with an earlier daemon: it goes once its command ends. Under a
    // driver that cannot pass stdio its command was an exec, gone with that caller: now.
    if (r.ephemeral && (!runs || !driver_->passes_stdio())) ended_runs.push_back(name);
    if (!runs && (r.phase == Phase::kRunning || r.phase == Phase::kCreating)) {
      const auto ended = outcome_from_file(logs_.events_file(name));
      r.phase = Phase::kStopped;
      r.reason = ended ? ended->reason : "the supervisor is gone";
      r.exit_code = ended ? ended->exit_status : std::nullopt;
      r.supervisor_pid = -1;
      (void)registry_.save(r, durability_of(r));
    }
    Sandbox& placed = *(sandboxes_[name] = std::move(sandbox));
    if (runs) watch_supervisor(placed);
  }
  for (const auto& name : ended_runs)
    remove(name, [name](const Status& st) {
      if (!st)
        log::warn(kComponent, st.error().message());
      else
        log::info(kComponent, "removed " + name + ": a run whose caller left with an earlier daemon");
    });
  // What the adopted ones hold may have changed while no daemon ran (a provider of
  // openshelld.toml reads its systemd credential anew): each gets its services again.
  push_services();
  return loaded.problems;
}

void Manager::watch_supervisor(Sandbox& sandbox) {
  const std::string name = sandbox.record.name;
  auto watch = Watch::readable(event_, sandbox.supervisor.fd(),
                               [this, name] { on_supervisor_gone(name); });
  if (watch) {
    sandbox.gone = std::move(*watch);
    return;
  }
  // Out of memory or descriptors: known at once rather than missed forever.
  log::warn(kComponent, "cannot watch the supervisor of " + name + ": " + watch.error().message());
}

Result<Manager::NewPolicy> Manager::new_policy(const std::string& policy,
                                               const std::string& text,
                                               const std::string& source) const {
  NewPolicy np;
  if (!text.empty() || !source.empty()) {  // the caller's own: no named policy to follow
    np.text = text;
    np.source = source.empty() ? "<policy>" : source.substr(0, 256);
    np.origin = "created from " + np.source;
    return np;
  }
  np.name = policy.empty() ? config_.default_policy : policy;
  if (!valid_policy_name(np.name))
    return Error::invalid("invalid policy name '" + np.name.substr(0, 64) + "'");
  np.source = config_.policy_dir + "/" + np.name + ".toml";
  auto read = sys::read_file(np.source, policy::kMaxPolicyFileBytes + 1);
  if (!read) return Error::from_errno("no policy '" + np.name + "' (" + np.source + ")", ENOENT);
  np.text = std::move(*read);
  np.origin = "created from policy " + np.name;
  return np;
}

Status Manager::check_limits(const policy::Policy& policy, uid_t owner) const {
  if (owner == 0) return {};
  const auto excess = policy::exceeded_caps(
      policy::with_defaults(policy.resources, config_.sandbox_defaults), config_.user_caps);
  if (excess.empty()) return {};
  std::string all;
  for (const auto& e : excess) all += (all.empty() ? "" : "; ") + e;
  return Error::from_errno(policy.source + ": " + all, EPERM);
}

Result<std::shared_ptr<const policy::Policy>> Manager::policy_of(Sandbox& sandbox) const {
  if (sandbox.policy) return sandbox.policy;
  const SandboxRecord& r = sandbox.record;
  auto text = registry_.revision(r.name, r.revision);
  if (!text)
    return Error::from_errno("revision " + std::to_string(r.revision) + " of " + r.name +
                             " is missing");
  auto parsed = policy::parse_policy_string(*text, registry_.revision_path(r.name, r.revision));
  if (!parsed.ok())
    return Error::invalid("revision " + std::to_string(r.revision) + " of " + r.name +
                          " does not parse with this version: " +
                          (parsed.diagnostics.empty() ? std::string("invalid")
                                                      : parsed.diagnostics.front().to_string()));
  sandbox.policy = parsed.policy;
  return sandbox.policy;
}

Result<Manager::Sandbox*> Manager::admit(const std::string& name, const NewPolicy& np,
                                         std::vector<std::string> command, uid_t owner,
                                         SandboxOptions options, bool ephemeral) {
  // The one check of a name from outside: everything after uses names found here.
  if (!valid_sandbox_name(name))
    return Error::invalid("invalid sandbox name '" + name.substr(0, 64) +
                          "': 1-63 of a-z, 0-9 and '-', not starting with '-'");
  // Names are host-wide (they name the unit, the control socket, the cgroup), but another
  // user's sandbox does not exist for a member: one answer, whoever holds the name, so it
  // confirms nothing about whose it is.
  if (sandboxes_.contains(name))
    return Error::from_errno("the sandbox name " + name +
                                 " is taken (names are shared by every user of this host)",
                             EEXIST);
  if (sandboxes_.size() >= config_.max_sandboxes)
    return Error::from_errno("at most " + std::to_string(config_.max_sandboxes) + " sandboxes",
                             EAGAIN);
  if (owner != 0 &&
      std::count_if(sandboxes_.begin(), sandboxes_.end(), [owner](const auto& entry) {
        return entry.second->record.owner_uid == owner;
      }) >= static_cast<std::ptrdiff_t>(config_.max_sandboxes_per_user))
    return Error::from_errno("at most " + std::to_string(config_.max_sandboxes_per_user) +
                                 " sandboxes per user (max_sandboxes_per_user); delete one first",
                             EAGAIN);
  // Parsed here, once: the limits, the unit's limits and every later comparison use this.
  auto parsed = validate_policy(np.text, np.source);
  if (!parsed) return parsed.error();
  if (auto st = check_limits(**parsed, owner); !st) return st.error();
  if (!options.workdir.empty())
    if (auto dir = open_workdir(options.workdir, owner); !dir) return dir.error();
  if (auto st = control::check_env(options.env); !st) return st.error();
  if (owner != 0 && (!options.providers.empty() || !options.routes.empty()))
    return Error::from_errno("only root attaches providers and inference routes to a sandbox; "
                             "the operator's default_routes apply to others",
                             EPERM);
  for (const auto& p : options.providers)
    if (auto found = find_provider(p); !found) return found.error();
  for (const auto& r : options.routes)
    if (auto found = routes_->get(r); !found) return found.error();
  logs_.retire(name);  // of an earlier sandbox of this name whose removal did not get that far
  auto sandbox = std::make_unique<Sandbox>();
  SandboxRecord& record = sandbox->record;
  record.ephemeral = ephemeral;
  record.workdir = std::move(options.workdir);
  record.workdir_readonly = options.workdir_readonly;
  record.env = std::move(options.env);
  record.providers = std::move(options.providers);
  record.routes = std::move(options.routes);
  record.name = name;
  record.policy = np.name;
  record.pinned = np.name.empty();  // its own policy: reloads have nothing to give it
  record.owner_uid = owner;
  record.command = command.empty() ? std::vector<std::string>{"/bin/sleep", "infinity"}
                                   : std::move(command);
  record.created_unix_ms = now_unix_ms();
  record.phase = Phase::kCreating;
  record.source = np.origin;
  auto revision = registry_.add_revision(name, np.text, np.origin, durability_of(record));
  if (!revision) return revision.error();
  record.revision = *revision;
  sandbox->policy = std::move(*parsed);
  // The record is written once its supervisor is started (launch), when it names a process a
  // restarted daemon can adopt.
  Sandbox* placed = sandbox.get();
  sandboxes_[name] = std::move(sandbox);
  return placed;
}

Status Manager::launch(Sandbox& sandbox, std::vector<UniqueFd> stdio,
                       std::vector<std::string> run_env,
                       std::function<void(const LaunchEnd&)> launched) {
  const SandboxRecord& record = sandbox.record;
  const std::string name = record.name;
  auto policy = policy_of(sandbox);
  if (!policy) return policy.error();
  // /sandbox: the caller's own directory (checked again: it may have changed since), or a
  // workspace of the sandbox's own, where the agent writes as the caller, or as an id of the
  // sandbox's own for root's sandboxes (the supervisor refuses a root-owned workspace).
  const bool own_workspace = record.workdir.empty();
  const std::string workspace = own_workspace ? registry_.workspace(name) : record.workdir;
  if (own_workspace) {
    if (auto st = make_dir(workspace, 0700); !st) return st;
    // Never nobody (shared by every root sandbox and by host daemons): a workspace an earlier
    // version gave to nobody moves over.
    const uid_t owner = record.owner_uid == 0 ? sandbox_outside_id(name) : record.owner_uid;
    struct stat was {};
    if (::lstat(workspace.c_str(), &was) == 0 && was.st_uid == kNobody && owner != kNobody)
      give_tree(workspace, owner);
    if (::chown(workspace.c_str(), owner, owner) != 0)
      return Error::from_errno("chown " + workspace);
  } else if (auto dir = open_workdir(workspace, record.owner_uid); !dir) {
    return dir.error();
  }
  const std::string logs = logs_.dir(name);
  if (auto st = make_dir(logs, 0700); !st) return st;

  Launch l;
  l.sandbox = name;
  l.args = {config_.supervisor, "run",
            "--policy-file",    registry_.revision_path(name, record.revision),
            "--name",           name,
            "--workdir",        workspace,
            "--control",        supervisors_.socket(name),
            "--events",         logs_.events_file(name)};
  if (own_workspace) l.args.emplace_back("--workdir-from-daemon");
  // Its providers and routes go down the status channel once the supervisor is started (never
  // on its command line, never in a file).
  auto services = services_of(sandbox);
  if (!services) return services.error();
  auto services_json = services::to_json(*services);
  if (!services_json) return services_json.error();
  l.args.emplace_back("--services-on-status");
  if (record.workdir_readonly) l.args.emplace_back("--workdir-readonly");
  for (const auto& kv : record.env) l.args.insert(l.args.end(), {"--env", kv});
  for (const auto& kv : run_env) l.args.insert(l.args.end(), {"--env", kv});
  if (journal_) l.args.emplace_back("--journal");
  // A member's sandbox shows it nothing of the host it could not reach itself.
  if (record.owner_uid != 0)
    l.args.insert(l.args.end(), {"--owner", std::to_string(record.owner_uid)});
  for (const auto& assignment : policy::resource_assignments(config_.sandbox_defaults))
    l.args.insert(l.args.end(), {"--default", assignment});
  for (const auto& file : config_.upstream_ca) l.args.insert(l.args.end(), {"--upstream-ca", file});
  if (!config_.upstream_proxy.empty())
    l.args.insert(l.args.end(), {"--upstream-proxy", config_.upstream_proxy});
  l.command = record.command;
  l.resources = policy::with_defaults((*policy)->resources, config_.sandbox_defaults);
  l.stdio = std::move(stdio);
  // A socket, not a pipe: a supervisor that reports after we are gone gets EPIPE
  // (MSG_NOSIGNAL), not SIGPIPE.
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return Error::from_errno("socketpair");
  UniqueFd status(pair[0]);
  l.status = UniqueFd(pair[1]);
  l.status_ours = status.get();
  auto process = driver_->start(std::move(l), [this, name](Error why) {
    end_launch(name, {std::move(why), std::nullopt});
  });
  // Our copy of the supervisor's end is gone with `l`: its end of file is the supervisor's.
  if (!process) return process.error();
  {
    std::string message = services_json->dump();
    const auto n = static_cast<uint32_t>(message.size());
    message.insert(0, std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                                  static_cast<char>(n >> 8), static_cast<char>(n)});
    // A fresh socket's buffer holds it whole (it is at most services::kMaxBytes).
    const ssize_t sent =
        ::send(status.get(), message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    OPENSSL_cleanse(message.data(), message.size());
    if (sent != static_cast<ssize_t>(message.size())) {
      (void)process->signal(SIGKILL);
      return Error::from_errno("sending the supervisor its providers and routes");
    }
  }
  auto watch = Watch::readable(event_, status.get(), [this, name] { on_status(name); });
  auto deadline = Watch::after(event_, kStartTimeout, [this, name] {
    end_launch(name, {Error::from_errno("the supervisor did not come up; see " +
                                            driver_->log_hint(name),
                                        ETIMEDOUT),
                      std::nullopt});
  });
  if (!watch || !deadline) {
    (void)process->signal(SIGKILL);
    return (!watch ? watch.error() : deadline.error()).wrap("watching the supervisor's start");
  }
  // Recorded at once (not durably: a power loss takes the process too), so that a daemon that
  // dies before the launch finds and adopts it instead of losing a running sandbox.
  sandbox.record.phase = Phase::kCreating;
  sandbox.record.supervisor_pid = process->pid();
  if (auto st = changed(sandbox, sys::Durability::kProcessCrash); !st)
    log::warn(kComponent, st.error().message());
  sandbox.supervisor = std::move(*process);
  sandbox.status = std::move(status);
  sandbox.status_text.clear();
  sandbox.status_watch = std::move(*watch);
  sandbox.launching = std::make_unique<Sandbox::Launching>();
  sandbox.launching->deadline = std::move(*deadline);
  sandbox.launching->launched = std::move(launched);
  return {};
}

void Manager::on_status(const std::string& name) {
  auto found = find(name);
  if (!found) return;
  Sandbox* sandbox = *found;
  char buf[256];
  const ssize_t n = ::recv(sandbox->status.get(), buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  const bool eof = n <= 0;
  if (n > 0 && sandbox->status_text.size() < kMaxStatusBytes)
    sandbox->status_text.append(buf, static_cast<size_t>(n));
  const StatusLines lines = parse_status(sandbox->status_text);
  if (sandbox->launching) {
    if (lines.launched && !sandbox->supervisor) {
      // Under a driver that could not tell at once, the supervisor names itself; the driver
      // checks that it is this sandbox's.
      auto process = driver_->adopt(name, lines.pid);
      if (!process)
        return end_launch(name, {process.error().wrap("the supervisor launched, but"),
                                 lines.exit_code});
      sandbox->supervisor = std::move(*process);
    }
    // Launched: its command runs (a create answers now; how it ends later is the sandbox's
    // phase and reason). An "exit N" before that: it could not be run or built.
    if (!lines.launched) {
      if (eof || lines.exit_code)
        return end_launch(name, {Error::invalid(start_failure(name)), lines.exit_code});
      return;
    }
    end_launch(name, {Status{}, std::nullopt});
    found = find(name);
    if (!found) return;
    sandbox = *found;
  }
  // Launched: a run's command ends with "exit N" (sent once the sandbox is gone: agent,
  // cgroup, mounts, network); for the process's own exit after it, nobody waits.
  if (sandbox->run_ticket != 0 && (lines.exit_code || eof)) {
    ExecOutcome outcome;
    if (lines.exit_code) {
      outcome.ok = true;
      outcome.exit_code = *lines.exit_code;
    } else {
      outcome.error = "the sandbox ended without a status";
    }
    return end_run(sandbox->run_ticket, outcome);
  }
  if (eof) {
    sandbox->status_watch.reset();
    sandbox->status.reset();
  }
}

std::string Manager::start_failure(const std::string& name) {
  // Its events say how the command ended (at once, not found, ...) or what could not be built.
  if (auto ended = outcome_from_file(logs_.events_file(name)))
    return "sandbox " + name + " ended during start: " + ended->reason;
  const std::string words = driver_->last_words(name);
  return "the supervisor exited during start" + (words.empty() ? "" : ": " + words) + "; see " +
         driver_->log_hint(name);
}

void Manager::mark_failed(Sandbox& sandbox, const Error& why, std::optional<int> exit_code) {
  SandboxRecord& r = sandbox.record;
  r.phase = Phase::kFailed;
  r.reason = why.message();
  r.supervisor_pid = -1;
  if (!exit_code)
    if (auto ended = outcome_from_file(logs_.events_file(r.name))) exit_code = ended->exit_status;
  r.exit_code = exit_code;
  (void)changed(sandbox);
}

void Manager::end_launch(const std::string& name, LaunchEnd end) {
  auto found = find(name);
  if (!found || !(*found)->launching) return;
  Sandbox& sandbox = **found;
  const auto launching = std::move(sandbox.launching);
  if (end.status) {
    SandboxRecord& r = sandbox.record;
    r.phase = Phase::kRunning;
    r.supervisor_pid = sandbox.supervisor.pid();
    r.reason.clear();
    r.exit_code.reset();
    if (auto st = changed(sandbox); !st) log::warn(kComponent, st.error().message());
    log::info(kComponent, "sandbox " + name + " running (supervisor pid " +
                              std::to_string(sandbox.supervisor.pid()) + ")");
    if (sandbox.run_ticket == 0) {
      // Its end is watched on the pidfd; the status channel has nothing more to say to us.
      sandbox.status_watch.reset();
      sandbox.status.reset();
      watch_supervisor(sandbox);
    } else if (auto c = commands_.find(sandbox.run_ticket);
               c != commands_.end() && c->second->abandoned) {
      // Its caller left while it started.
      control::Request shutdown;
      shutdown.op = control::Op::kShutdown;
      (void)supervisors_.tell(name, shutdown);
    }
  } else {
    // Gone, or never came up: a supervisor still there (the start timed out) is killed.
    if (sandbox.supervisor) (void)sandbox.supervisor.signal(SIGKILL);
    sandbox.supervisor = sys::ProcessHandle();
    sandbox.status_watch.reset();
    sandbox.status.reset();
    mark_failed(sandbox, end.status.error(), end.exit_code);
  }
  if (launching->launched) launching->launched(end);
  // Stops and removals asked for meanwhile, in order.
  found = find(name);
  if (!found) return;
  auto stops = std::move((*found)->stops_waiting);
  for (auto& [remove_after, done] : stops) stop_then(name, remove_after, std::move(done));
}

void Manager::on_supervisor_gone(const std::string& name) {
  auto found = find(name);
  if (!found) return;
  Sandbox& sandbox = **found;
  if (sandbox.stopping) return end_stop(name);
  // Ended on its own: how, from its events.
  sandbox.gone.reset();
  sandbox.supervisor = sys::ProcessHandle();
  SandboxRecord& r = sandbox.record;
  const auto ended = outcome_from_file(logs_.events_file(name));
  r.phase = Phase::kStopped;
  r.reason = ended ? ended->reason : "the supervisor is gone";
  r.exit_code = ended ? ended->exit_status : std::nullopt;
  r.supervisor_pid = -1;
  log::info(kComponent, "sandbox " + name + " stopped: " + r.reason);
  if (r.ephemeral) {
    // A run adopted from an earlier daemon: nobody waits for it, and it goes.
    if (auto st = forget(name); !st)
      log::warn(kComponent, st.error().message());
    else
      log::info(kComponent, "removed " + name + ": a run whose caller left with an earlier daemon");
    return;
  }
  if (auto st = changed(sandbox); !st) log::warn(kComponent, st.error().message());
}

void Manager::create(const std::string& name, const std::string& policy,
                     std::vector<std::string> command, uid_t owner, SandboxOptions options,
                     Created done) {
  create_from(name, new_policy(policy, "", ""), std::move(command), owner, std::move(options),
              std::move(done));
}

void Manager::create_with_text(const std::string& name, const std::string& text,
                               const std::string& source, std::vector<std::string> command,
                               uid_t owner, SandboxOptions options, Created done) {
  create_from(name, new_policy("", text, source.empty() ? "<policy>" : source),
              std::move(command), owner, std::move(options), std::move(done));
}

void Manager::create_from(const std::string& name, Result<NewPolicy> np,
                          std::vector<std::string> command, uid_t owner, SandboxOptions options,
                          Created done) {
  if (!np) return done(np.error());
  auto admitted = admit(name, *np, std::move(command), owner, std::move(options), false);
  if (!admitted) return done(admitted.error());
  Sandbox& sandbox = **admitted;
  auto st = launch(sandbox, {}, {}, [this, name, done](const LaunchEnd& end) {
    if (!end.status) return done(end.status.error());
    auto found = find(name);
    if (!found) return done(no_sandbox(name).error());
    done((*found)->record);
  });
  if (!st) {
    mark_failed(sandbox, st.error(), std::nullopt);
    done(st.error());
  }
}

std::vector<SandboxRecord> Manager::list() const {
  std::vector<SandboxRecord> out;
  out.reserve(sandboxes_.size());
  for (const auto& [name, sandbox] : sandboxes_) out.push_back(sandbox->record);
  return out;
}

Result<SandboxRecord> Manager::get(const std::string& name) const {
  auto found = find(name);
  if (!found) return found.error();
  return (*found)->record;
}

Status Manager::refuse_if_busy(const Sandbox& sandbox) const {
  const std::string name = sandbox.record.name.substr(0, 64);
  if (sandbox.launching) return Error::from_errno("sandbox " + name + " is starting", EBUSY);
  if (sandbox.stopping) return Error::from_errno("sandbox " + name + " is stopping", EBUSY);
  return {};
}

void Manager::start(const std::string& name, std::function<void(Result<bool>)> done) {
  auto found = find(name);
  if (!found) return done(found.error());
  Sandbox& sandbox = **found;
  if (auto st = refuse_if_busy(sandbox); !st) return done(st.error());
  if (sandbox.record.phase == Phase::kRunning) return done(false);  // nothing to do
  // The caps may have changed since the revision was made (a new openshelld.toml).
  auto policy = policy_of(sandbox);
  if (!policy) return done(policy.error());
  if (auto st = check_limits(**policy, sandbox.record.owner_uid); !st) return done(st.error());
  auto st = launch(sandbox, {}, {}, [done](const LaunchEnd& end) {
    if (!end.status) return done(end.status.error());
    done(true);
  });
  if (!st) {
    mark_failed(sandbox, st.error(), std::nullopt);
    done(st.error());
  }
}

void Manager::stop(const std::string& name, std::function<void(Status)> done) {
  stop_then(name, false, std::move(done));
}

void Manager::remove(const std::string& name, std::function<void(Status)> done) {
  stop_then(name, true, std::move(done));
}

void Manager::stop_then(const std::string& name, bool remove_after,
                        std::function<void(Status)> done) {
  auto found = find(name);
  if (!found) return done(found.error());
  Sandbox& sandbox = **found;
  if (sandbox.launching) {
    sandbox.stops_waiting.emplace_back(remove_after, std::move(done));
    return;
  }
  if (sandbox.stopping) {
    sandbox.stopping->remove_after |= remove_after;
    sandbox.stopping->waiting.push_back(std::move(done));
    return;
  }
  if (!sandbox.supervisor) {  // not running
    if (remove_after) return done(forget(name));
    return done({});
  }
  sandbox.stopping = std::make_unique<Sandbox::Stopping>();
  sandbox.stopping->remove_after = remove_after;
  sandbox.stopping->waiting.push_back(std::move(done));
  begin_stop(sandbox);
}

void Manager::begin_stop(Sandbox& sandbox) {
  const std::string name = sandbox.record.name;
  // SIGTERM to the main process, SIGKILL after the supervisor's grace; its end comes to the
  // pidfd's watch (a run's: to its status channel). Past kStopTimeout it is killed.
  control::Request shutdown;
  shutdown.op = control::Op::kShutdown;
  (void)supervisors_.tell(name, shutdown);
  auto deadline = Watch::after(event_, kStopTimeout, [this, name] {
    auto found = find(name);
    if (!found) return;
    log::warn(kComponent, "sandbox " + name + " did not stop within 15 s: killing it");
    (void)(*found)->supervisor.signal(SIGKILL);
  });
  if (deadline) {
    sandbox.stopping->deadline = std::move(*deadline);
  } else {
    // No timer to be had: killed now rather than perhaps never.
    (void)sandbox.supervisor.signal(SIGKILL);
  }
}

void Manager::end_stop(const std::string& name) {
  auto found = find(name);
  if (!found || !(*found)->stopping) return;
  Sandbox& sandbox = **found;
  const auto stopping = std::move(sandbox.stopping);
  sandbox.gone.reset();
  sandbox.supervisor = sys::ProcessHandle();
  SandboxRecord& r = sandbox.record;
  r.phase = Phase::kStopped;
  r.reason = "stopped on request";
  r.supervisor_pid = -1;
  if (auto ended = outcome_from_file(logs_.events_file(name))) r.exit_code = ended->exit_status;
  const Status st = stopping->remove_after ? forget(name) : changed(sandbox);
  for (auto& callback : stopping->waiting) callback(st);
}

Status Manager::forget(const std::string& name) {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) return no_sandbox(name);
  if (auto st = registry_.remove(name); !st) return st;
  logs_.retire(name);
  sys::remove_socket_path(supervisors_.socket(name));  // left by a supervisor that was killed
  // Only a workspace of its own: a --workdir is the caller's, and stays.
  std::error_code ignored;
  if (it->second->record.workdir.empty())
    std::filesystem::remove_all(registry_.workspace(name), ignored);
  auto node = sandboxes_.extract(it);
  if (listener_.removed) listener_.removed(node.mapped()->record);
  return {};  // its watches go with it
}

Result<uint64_t> Manager::exec(const std::string& name, std::vector<std::string> argv,
                               std::vector<std::string> env, std::string cwd,
                               std::vector<UniqueFd> stdio,
                               std::function<void(const ExecOutcome&)> done) {
  auto found = find(name);
  if (!found) return found.error();
  if (auto st = refuse_if_busy(**found); !st) return st.error();
  if ((*found)->record.phase != Phase::kRunning)
    return Error::invalid("sandbox " + name + " is " +
                          std::string(to_string((*found)->record.phase)));
  const uint64_t ticket = next_ticket_++;
  auto command = std::make_unique<Command>();
  command->ticket = ticket;
  command->sandbox = name;
  command->done = std::move(done);
  commands_[ticket] = std::move(command);
  auto started = exec_into(ticket, name, std::move(argv), std::move(env), std::move(cwd),
                           std::move(stdio));
  if (!started) commands_.erase(ticket);  // nothing ran: no outcome to give
  return started;
}

Result<uint64_t> Manager::exec_into(uint64_t ticket, const std::string& name,
                                    std::vector<std::string> argv, std::vector<std::string> env,
                                    std::string cwd, std::vector<UniqueFd> stdio) {
  Command& command = *commands_.at(ticket);
  control::Request request;
  request.op = control::Op::kExec;
  request.exec.argv = std::move(argv);
  request.exec.env = std::move(env);
  request.exec.cwd = std::move(cwd);
  request.exec.tty = stdio.size() == 1;  // a pty's slave, the command's controlling terminal
  std::vector<int> fds;
  for (const auto& f : stdio) fds.push_back(f.get());
  auto connection = supervisors_.open(name, request, fds);
  if (!connection) return connection.error();
  auto replies = Watch::readable(event_, connection->get(), [this, ticket] { on_exec_reply(ticket); });
  if (!replies) return replies.error().wrap("watching the exec");
  command.connection = std::move(*connection);
  command.replies = std::move(*replies);
  return ticket;
}

void Manager::on_exec_reply(uint64_t ticket) {
  auto it = commands_.find(ticket);
  if (it == commands_.end()) return;
  auto message = sys::receive_message(it->second->connection.get(), control::kMaxFrame, 0);
  ExecOutcome outcome;
  if (!message || !message->has_value()) {
    outcome.error = "the sandbox ended before the command did";
    return finish_command(ticket, outcome);
  }
  auto reply = control::parse_reply((*message)->frame);
  if (!reply) {
    outcome.error = "bad reply from the supervisor: " + reply.error().message();
    return finish_command(ticket, outcome);
  }
  if (!reply->ok) {
    outcome.error = reply->error;
    outcome.exit_code = reply->data.value("exit_code", -1);  // 126, 127: the command's fault
    return finish_command(ticket, outcome);
  }
  if (reply->data.value("event", "") == "exited") {
    outcome.ok = true;
    outcome.exit_code = reply->data.value("exit_code", -1);
    outcome.signal = reply->data.value("signal", 0);
    finish_command(ticket, outcome);
  }
  // "started", or a signal's acknowledgement: more to come.
}

void Manager::finish_command(uint64_t ticket, const ExecOutcome& outcome) {
  auto node = commands_.extract(ticket);
  if (node.empty()) return;
  auto command = std::move(node.mapped());
  command->replies.reset();
  command->connection.reset();  // an exec whose caller left: the supervisor kills its command
  if (!command->run) {
    if (command->done) command->done(outcome);
    return;
  }
  // A run made of create and exec: its sandbox is stopped and removed first, then the answer.
  const std::string name = command->sandbox;
  remove(name, [name, done = std::move(command->done), outcome](const Status& st) {
    if (!st && st.error().code != std::errc::no_such_file_or_directory)
      log::warn(kComponent, "removing " + name + ": " + st.error().message());
    if (done) done(outcome);
  });
}

void Manager::end_run(uint64_t ticket, const ExecOutcome& outcome) {
  auto node = commands_.extract(ticket);
  if (node.empty()) return;
  const auto command = std::move(node.mapped());
  const std::string& name = command->sandbox;
  std::vector<std::function<void(Status)>> waiting;
  if (auto found = find(name)) {
    Sandbox& sandbox = **found;
    sandbox.run_ticket = 0;
    sandbox.status_watch.reset();
    sandbox.status.reset();
    sandbox.record.phase = Phase::kStopped;
    if (sandbox.stopping) waiting = std::move(sandbox.stopping->waiting);
    sandbox.stopping.reset();
  }
  // The reply first, the removal (~0.7 ms of unlinking) after it: both happen in this one
  // dispatch, so no call the caller makes after the reply can see the sandbox.
  if (command->done) command->done(outcome);
  Status st;
  if (sandboxes_.contains(name)) st = forget(name);
  if (!st) log::warn(kComponent, "removing " + name + ": " + st.error().message());
  for (auto& callback : waiting) callback(st);
}

Result<uint64_t> Manager::run(const std::string& policy, const std::string& text,
                              const std::string& source, std::vector<std::string> argv,
                              std::vector<std::string> env, std::vector<UniqueFd> stdio,
                              uid_t owner, SandboxOptions options,
                              std::function<void(const ExecOutcome&)> done) {
  if (argv.empty()) return Error::invalid("run: no command");
  if (stdio.size() != 3) return Error::invalid("run: stdin, stdout and stderr are needed");
  auto np = new_policy(policy, text, source);
  if (!np) return np.error();
  std::string name;
  do {
    name = random_run_name();
  } while (sandboxes_.contains(name));
  const uint64_t ticket = next_ticket_++;
  auto command = std::make_unique<Command>();
  command->ticket = ticket;
  command->sandbox = name;
  command->run = true;
  command->done = std::move(done);
  const std::string argv0 = argv.front();

  Status st;
  if (!driver_->passes_stdio()) {
    // The supervisor cannot take the caller's descriptors: hold the sandbox with its default
    // command, exec the command in it, delete it.
    auto admitted = admit(name, *np, {}, owner, std::move(options), /*ephemeral=*/true);
    if (!admitted) return admitted.error();
    command->argv = std::move(argv);
    command->env = std::move(env);
    command->stdio = std::move(stdio);
    commands_[ticket] = std::move(command);
    st = launch(**admitted, {}, {}, [this, ticket, name](const LaunchEnd& end) {
      auto it = commands_.find(ticket);
      if (it == commands_.end()) return;
      Command& c = *it->second;
      ExecOutcome failed;
      if (!end.status) {
        failed.error = end.status.error().message();
        return finish_command(ticket, failed);
      }
      if (c.abandoned) {
        failed.error = "the caller went away";
        return finish_command(ticket, failed);
      }
      auto started = exec_into(ticket, name, std::move(c.argv), std::move(c.env), "",
                               std::move(c.stdio));
      if (!started) {
        failed.error = started.error().message();
        finish_command(ticket, failed);
      }
    });
  } else {
    options.env.clear();  // a run's environment goes to its command, not to a record
    auto admitted =
        admit(name, *np, std::move(argv), owner, std::move(options), /*ephemeral=*/true);
    if (!admitted) return admitted.error();
    Sandbox& sandbox = **admitted;
    sandbox.run_ticket = ticket;
    commands_[ticket] = std::move(command);
    st = launch(sandbox, std::move(stdio), std::move(env),
                [this, ticket, argv0](const LaunchEnd& end) {
                  if (end.status) return;  // its end comes on the status channel
                  ExecOutcome outcome;
                  outcome.error = "the sandbox did not start: " + end.status.error().message();
                  // The supervisor's own status as a shell's: the command was the problem.
                  if (end.exit_code == 126 || end.exit_code == 127) {
                    outcome.exit_code = *end.exit_code;
                    outcome.error = "cannot run " + argv0 + ": " +
                                    std::strerror(*end.exit_code == 127 ? ENOENT : EACCES);
                  }
                  end_run(ticket, outcome);
                });
  }
  if (!st) {
    // Nothing started: no outcome to give, nothing to keep.
    commands_.erase(ticket);
    (void)forget(name);
    return st.error();
  }
  return ticket;
}

Status Manager::signal(uint64_t ticket, int sig) {
  auto it = commands_.find(ticket);
  if (it == commands_.end()) return {};  // ended already
  Command& command = *it->second;
  control::Request request;
  request.op = control::Op::kSignal;
  request.signal = sig;
  if (command.connection) {
    // An exec's, over its own control connection (its reply comes among the exec's, and is
    // passed by: it carries no event).
    auto frame = control::encode_request(request);
    if (!frame) return frame.error();
    if (int err = sys::send_message(command.connection.get(), frame->data(), frame->size(), {});
        err != 0)
      return Error::from_errno("signalling the command", err);
    return {};
  }
  if (!command.run) return {};
  // A run's command is its sandbox's main process: through init, which passes it on.
  request.main = true;
  return supervisors_.tell(command.sandbox, request);
}

void Manager::abandon(uint64_t ticket) {
  auto it = commands_.find(ticket);
  if (it == commands_.end()) return;
  Command& command = *it->second;
  if (command.connection) {
    // Closing the exec's control connection is what makes the supervisor kill the command.
    ExecOutcome outcome;
    outcome.error = "the caller went away";
    return finish_command(ticket, outcome);
  }
  command.abandoned = true;
  // A run's command is its sandbox's main process: the sandbox stops, and its "exit N" ends
  // the run as any end does (removal included). One still starting stops once it has.
  auto found = find(command.sandbox);
  if (found && !(*found)->launching) {
    control::Request shutdown;
    shutdown.op = control::Op::kShutdown;
    (void)supervisors_.tell(command.sandbox, shutdown);
  }
}

void Manager::reload_policies(std::function<void(ReloadReport)> done) {
  PolicySet set = load_policies(config_.policy_dir);
  if (!set.ok()) {
    ReloadReport report;
    report.diagnostics = std::move(set.diagnostics);
    log::warn(kComponent, "policy reload rejected: " + report.diagnostics.front());
    // The sandboxes that would have taken it say so in their own event streams.
    for (const auto& [name, sandbox] : sandboxes_) {
      const SandboxRecord& r = sandbox->record;
      if (r.phase == Phase::kRunning && !r.pinned)
        logs_.emit(ocsf::config_change(name, "Rejected", ocsf::Severity::kMedium,
                                 ocsf::StatusId::kFailure,
                                 "policy reload rejected; revision " + std::to_string(r.revision) +
                                     " stays in force: " + report.diagnostics.front(),
                                 {{"policy", {{"name", r.policy}}}}),
                  journal_);
    }
    return done(std::move(report));
  }
  // Pushed to every sandbox at once, the replies taken as they come: each supervisor validates
  // and swaps on its own, so their work overlaps instead of queuing behind one another's.
  struct Reload {
    ReloadReport report;
    size_t outstanding = 0;
    std::function<void(ReloadReport)> done;
  };
  auto reload = std::make_shared<Reload>();
  reload->done = std::move(done);
  auto finish = [this](const std::shared_ptr<Reload>& r) {
    // Not fsynced one by one (six fsyncs a sandbox): one syncfs, before the reply.
    if (!r->report.applied.empty())
      if (auto st = registry_.sync(); !st) log::warn(kComponent, st.error().message());
    log::info(kComponent, "policies reloaded: " + std::to_string(r->report.applied.size()) +
                              " sandbox(es) updated");
    r->done(std::move(r->report));
  };
  for (auto& [name, sandbox] : sandboxes_) {
    const SandboxRecord& r = sandbox->record;
    // Not running: it reads its revision at start. Pinned: its policy was set directly, and
    // the named one no longer applies to it.
    if (r.phase != Phase::kRunning || r.pinned || sandbox->launching) continue;
    auto next = set.files.find(r.policy);
    if (next == set.files.end()) {
      reload->report.failed.push_back(name + ": its policy '" + r.policy +
                                      "' is gone; it keeps revision " + std::to_string(r.revision));
      continue;
    }
    const PolicyFile& file = next->second;
    if (auto current = registry_.revision(name, r.revision); current && *current == file.text)
      continue;
    if (!static_changes(*sandbox, *file.policy).empty()) {
      reload->report.needs_recreation.push_back(name);
      continue;
    }
    control::Request update;
    update.op = control::Op::kPolicyUpdate;
    update.policy_toml = file.text;
    ++reload->outstanding;
    supervisors_.call(name, update,
                      [this, reload, finish, name, text = file.text, parsed = file.policy](
                          Result<control::Reply> reply, std::vector<UniqueFd>) {
      auto found = find(name);
      if (!reply || !reply->ok) {
        // Gone since (stopped: it reads its revision at start) is no failure.
        if (found && (*found)->record.phase == Phase::kRunning)
          reload->report.failed.push_back(name + ": " +
                                          (reply ? reply->error : reply.error().message()));
      } else if (found) {
        const std::string origin = "reload of policy " + (*found)->record.policy;
        if (auto st = record_revision(**found, text, parsed, origin, sys::Durability::kProcessCrash);
            !st)
          reload->report.failed.push_back(name + ": " + st.error().message());
        else
          reload->report.applied.push_back(name);
      }
      if (--reload->outstanding == 0) finish(reload);
    });
  }
  if (reload->outstanding == 0) finish(reload);
}

void Manager::apply_revision(Sandbox& sandbox, std::string text,
                             std::shared_ptr<const policy::Policy> parsed, std::string origin,
                             Revised done) {
  const std::string name = sandbox.record.name;
  // Pinned from now on: its policy was set directly, and the named one no longer applies.
  auto record = [this, name, text, parsed, origin, done]() {
    auto found = find(name);
    if (!found) return done(no_sandbox(name).error());
    Sandbox& s = **found;
    const bool was_pinned = s.record.pinned;
    s.record.pinned = true;
    if (auto st = record_revision(s, text, parsed, origin, sys::Durability::kPowerLoss); !st) {
      s.record.pinned = was_pinned;
      return done(st.error());
    }
    done(s.record.revision);
  };
  // A stopped sandbox gets the whole policy at its next start.
  if (sandbox.record.phase != Phase::kRunning) return record();
  if (auto changed_keys = static_changes(sandbox, *parsed); !changed_keys.empty()) {
    std::string all;
    for (const auto& c : changed_keys) all += "\n  " + c;
    return done(Error{std::make_error_code(std::errc::operation_not_supported),
                      "sandbox " + name +
                          " runs: only [network_policies] may change while it does, and this "
                          "policy changes" +
                          all + "\nstop it and set the policy (it applies at the next start), or "
                                "re-create it"});
  }
  control::Request update;
  update.op = control::Op::kPolicyUpdate;
  update.policy_toml = std::move(text);
  supervisors_.call(name, update,
                    [record, done](Result<control::Reply> reply, std::vector<UniqueFd>) {
    if (!reply) return done(reply.error());
    if (!reply->ok) return done(Error::invalid(reply->error));
    record();
  });
}

std::vector<std::string> Manager::static_changes(Sandbox& sandbox,
                                                 const policy::Policy& next) const {
  auto running = policy_of(sandbox);
  if (!running) return {running.error().message()};
  return policy::static_differences(**running, next);
}

Result<providers::Provider> Manager::find_provider(const std::string& name) const {
  for (const auto& p : config_.providers)
    if (p.name == name) return p;
  return providers_->get(name);
}

Result<services::Services> Manager::services_of(const Sandbox& sandbox) const {
  const SandboxRecord& r = sandbox.record;
  services::Services out;
  for (const auto& name : r.providers) {
    auto p = find_provider(name);
    if (!p) {
      // Deleted since it was attached: its placeholders fail closed.
      log::warn(kComponent, "sandbox " + r.name + ": " + p.error().message());
      continue;
    }
    out.attached.push_back(std::move(*p));
  }
  const auto policy = sandbox.policy ? sandbox.policy : policy::default_policy();
  std::vector<std::string> names = r.routes;
  if (names.empty()) names = policy->inference.routes;
  if (names.empty()) names = config_.default_routes;
  if (r.owner_uid != 0) {
    // A member's sandbox spends the operator's keys only as the operator said.
    std::erase_if(names, [this](const std::string& n) {
      return std::find(config_.default_routes.begin(), config_.default_routes.end(), n) ==
             config_.default_routes.end();
    });
  }
  for (const auto& name : names) {
    auto route = routes_->get(name);
    if (!route) {
      log::warn(kComponent, "sandbox " + r.name + ": " + route.error().message());
      continue;
    }
    if (!services::find_provider(out, route->provider)) {
      if (auto p = find_provider(route->provider); p)
        out.routing.push_back(std::move(*p));
      else
        log::warn(kComponent, "route " + name + ": " + p.error().message());
    }
    out.routes.push_back(std::move(*route));
  }
  if (policy->inference.privacy_set) out.privacy = policy->inference.privacy;
  return out;
}

void Manager::push_services(const std::string& only) {
  for (auto& [name, sandbox] : sandboxes_) {
    if ((!only.empty() && name != only) || sandbox->record.phase != Phase::kRunning ||
        sandbox->launching)
      continue;
    (void)policy_of(*sandbox);  // its [inference] section
    auto services = services_of(*sandbox);
    auto j = services ? services::to_json(*services) : Result<nlohmann::json>(services.error());
    if (!j) {
      log::warn(kComponent, "sandbox " + name + ": " + j.error().message());
      continue;
    }
    control::Request update;
    update.op = control::Op::kServicesUpdate;
    update.services = std::move(*j);
    supervisors_.call(name, update,
                      [name](Result<control::Reply> reply, std::vector<UniqueFd>) {
      if (!reply || !reply->ok)
        log::warn(kComponent, "sandbox " + name + ": providers and routes not updated: " +
                                  (reply ? reply->error : reply.error().message()));
    });
  }
}

Status Manager::set_provider(const providers::Provider& given, bool create, bool keep_type) {
  for (const auto& p : config_.providers)
    if (p.name == given.name)
      return Error::from_errno("provider " + given.name + " is defined in openshelld.toml",
                               EPERM);
  providers::Provider next = given;
  if (create) {
    if (providers_->exists(given.name))
      return Error::from_errno("provider " + given.name + " exists: use provider update", EEXIST);
  } else {
    auto current = providers_->get(given.name);
    if (!current) return current.error();
    next = std::move(*current);
    if (!keep_type) next.type = given.type;
    for (const auto& [key, value] : given.credentials) next.credentials[key] = value;
  }
  if (auto st = providers_->put(next); !st) return st;
  log::info(kComponent, "provider " + next.name + (create ? " created" : " updated"));
  push_services();
  return {};
}

Status Manager::delete_provider(const std::string& name) {
  for (const auto& p : config_.providers)
    if (p.name == name)
      return Error::from_errno("provider " + name + " is defined in openshelld.toml", EPERM);
  if (auto st = providers_->remove(name); !st) return st;
  log::info(kComponent, "provider " + name + " deleted");
  push_services();
  return {};
}

Result<nlohmann::json> Manager::provider_info(const std::string& name,
                                              std::optional<uid_t> viewer) const {
  auto p = find_provider(name);
  if (!p) return p.error();
  nlohmann::json j = providers::describe(*p);
  j["source"] = providers_->exists(name) ? "store" : "openshelld.toml";
  nlohmann::json attached = nlohmann::json::array();
  nlohmann::json bindings = nlohmann::json::array();
  for (const auto& [sandbox_name, sandbox] : sandboxes_) {
    const auto& r = sandbox->record;
    if (std::find(r.providers.begin(), r.providers.end(), name) == r.providers.end()) continue;
    if (viewer && *viewer != 0 && r.owner_uid != *viewer) continue;  // others' are not theirs
    attached.push_back(sandbox_name);
    if (!sandbox->policy) continue;
    for (const auto& [rule_name, rule] : sandbox->policy->network_policies)
      for (const auto& ep : rule.endpoints)
        if (ep.credential_binding == name && ep.host)
          for (const auto port : ep.ports)
            bindings.push_back(sandbox_name + ": " + *ep.host + ":" + std::to_string(port));
  }
  j["sandboxes"] = std::move(attached);
  j["bindings"] = std::move(bindings);
  return j;
}

nlohmann::json Manager::provider_list(std::optional<uid_t> viewer) const {
  nlohmann::json out = nlohmann::json::array();
  std::vector<std::string> names;
  for (const auto& p : config_.providers) names.push_back(p.name);
  for (auto& n : providers_->names()) names.push_back(std::move(n));
  for (const auto& n : names)
    if (auto info = provider_info(n, viewer); info) out.push_back(std::move(*info));
  return out;
}

Status Manager::set_route(const inference::Route& route) {
  if (auto st = routes_->put(route); !st) return st;
  log::info(kComponent, "inference route " + route.name + " set");
  push_services();
  return {};
}

Status Manager::delete_route(const std::string& name) {
  if (auto st = routes_->remove(name); !st) return st;
  log::info(kComponent, "inference route " + name + " deleted");
  push_services();
  return {};
}

Result<nlohmann::json> Manager::route_info(const std::string& name) const {
  auto route = routes_->get(name);
  if (!route) return route.error();
  nlohmann::json j = inference::to_json(*route);
  j["default"] = std::find(config_.default_routes.begin(), config_.default_routes.end(), name) !=
                 config_.default_routes.end();
  return j;
}

nlohmann::json Manager::route_list() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& route : routes_->all())
    if (auto info = route_info(route.name); info) out.push_back(std::move(*info));
  return out;
}

Status Manager::record_revision(Sandbox& sandbox, const std::string& text,
                                std::shared_ptr<const policy::Policy> parsed,
                                const std::string& origin, sys::Durability durability) {
  SandboxRecord& r = sandbox.record;
  auto revision = registry_.add_revision(r.name, text, origin, durability_of(r, durability));
  if (!revision) return revision.error().wrap("applied, but not recorded");
  r.revision = *revision;
  r.source = origin;
  sandbox.policy = std::move(parsed);
  auto st = registry_.save(r, durability_of(r, durability));
  if (listener_.revised) listener_.revised(r);
  push_services(r.name);  // its [inference] section may have changed
  return st;
}

void Manager::set_policy(const std::string& name, const std::string& text,
                         const std::string& source, Revised done) {
  auto found = find(name);
  if (!found) return done(found.error());
  Sandbox& sandbox = **found;
  if (auto st = refuse_if_busy(sandbox); !st) return done(st.error());
  const std::string shown = source.empty() ? "<policy>" : source;
  // A static section the file leaves out means the one in force, not the built-in default;
  // what is taken is appended, so diagnostics keep the file's own line numbers. One parse.
  auto current = registry_.revision(name, sandbox.record.revision);
  std::string complete = current ? policy::with_static_sections_of(text, *current) : text;
  auto parsed = validate_policy(complete, shown);
  if (!parsed) return done(parsed.error());
  if (auto st = check_limits(**parsed, sandbox.record.owner_uid); !st) return done(st.error());
  apply_revision(sandbox, std::move(complete), std::move(*parsed),
                 "set from " + source.substr(0, 256), std::move(done));
}

void Manager::rollback_policy(const std::string& name, uint64_t to, Revised done) {
  auto found = find(name);
  if (!found) return done(found.error());
  Sandbox& sandbox = **found;
  if (auto st = refuse_if_busy(sandbox); !st) return done(st.error());
  const uint64_t current = sandbox.record.revision;
  if (to == 0) {  // the one before the current
    for (uint64_t n : registry_.revisions(name))
      if (n < current) to = n;
    if (to == 0)
      return done(Error::invalid(name + " has no revision before " + std::to_string(current)));
  }
  if (to == current)
    return done(Error::invalid(name + " is on revision " + std::to_string(to) + " already"));
  auto text = registry_.revision(name, to);
  if (!text)
    return done(Error::from_errno("no revision " + std::to_string(to) + " of " + name, ENOENT));
  auto parsed = validate_policy(*text, registry_.revision_path(name, to));
  if (!parsed) return done(parsed.error());
  apply_revision(sandbox, std::move(*text), std::move(*parsed), "rollback to " + std::to_string(to),
                 std::move(done));
}

Result<std::string> Manager::sandbox_policy(const std::string& name, uint64_t number) const {
  auto found = find(name);
  if (!found) return found.error();
  auto text = registry_.revision(name, number == 0 ? (*found)->record.revision : number);
  if (!text) return Error::from_errno("no revision " + std::to_string(number) + " of " + name, ENOENT);
  return text;
}

Result<std::vector<RevisionInfo>> Manager::policy_history(const std::string& name) const {
  if (auto found = find(name); !found) return found.error();
  return registry_.history(name);
}

void Manager::open_pty(const std::string& name, std::function<void(Result<UniqueFd>)> done) {
  auto found = find(name);
  if (!found) return done(found.error());
  if (auto st = refuse_if_busy(**found); !st) return done(st.error());
  if ((*found)->record.phase != Phase::kRunning)
    return done(Error::invalid("sandbox " + name + " is " +
                               std::string(to_string((*found)->record.phase))));
  control::Request request;
  request.op = control::Op::kOpenPty;
  supervisors_.call(name, request,
                    [done](Result<control::Reply> reply, std::vector<UniqueFd> fds) {
    if (!reply) return done(reply.error());
    if (!reply->ok) return done(Error::invalid(reply->error));
    if (fds.size() != 1) return done(Error::invalid("no terminal came with the reply"));
    done(std::move(fds.front()));
  });
}

Result<UniqueFd> Manager::open_workspace(const std::string& name) const {
  auto found = find(name);
  if (!found) return found.error();
  const SandboxRecord& record = (*found)->record;
  // The caller's own directory, opened as the caller through no symlink: a handle beneath
  // which the caller then opens with its own credentials must be one it could reach.
  if (!record.workdir.empty()) return open_workdir(record.workdir, record.owner_uid);
  const std::string dir = registry_.workspace(name);
  UniqueFd fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error::from_errno("opening the workspace of " + name);
  return fd;
}

Result<std::vector<std::string>> Manager::events(const std::string& name, size_t max,
                                                 uint32_t class_uid, bool denied_only,
                                                 int64_t since_unix_ms) const {
  if (auto found = find(name); !found) return found.error();
  return logs_.events(name, max, class_uid, denied_only, since_unix_ms);
}

std::vector<std::string> Manager::policy_names() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : load_policies(config_.policy_dir).files) {
    (void)file;
    names.push_back(name);
  }
  return names;
}

Result<std::string> Manager::policy_text(const std::string& name) const {
  if (!valid_policy_name(name)) return Error::invalid("invalid policy name");
  auto text = sys::read_file(config_.policy_dir + "/" + name + ".toml",
                             policy::kMaxPolicyFileBytes);
  if (!text) return Error::from_errno("no policy " + name, ENOENT);
  return text;
}

}  // namespace openshell::daemon
