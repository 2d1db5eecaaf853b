#include "openshelld/manager.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/control.hpp"
#include "core/event_sink.hpp"
#include "core/log.hpp"
#include "core/names.hpp"
#include "core/policy.hpp"
#include "openshelld/outcome.hpp"
#include "openshelld/workdir.hpp"
#include "sys/file_util.hpp"
#include "sys/journal.hpp"
#include "sys/process.hpp"
#include "sys/unix_socket.hpp"

namespace openshell::daemon {
namespace {

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

std::string last_line(const std::string& file) {
  auto text = sys::read_file(file, 1 << 20);
  if (!text) return "";
  std::string t = *text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

constexpr std::string_view kComponent = "manager";
constexpr auto kStartTimeout = std::chrono::seconds(15);
// A starting supervisor's control socket is polled from 1 ms, doubling up to this: a sandbox
// is usually up within a few milliseconds.
constexpr auto kStartPollMax = std::chrono::milliseconds(20);
constexpr auto kStopTimeout = std::chrono::seconds(15);
constexpr uid_t kNobody = 65534;

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

// Whether `pid` is the supervisor of sandbox `name` (and not a process that took its pid since):
// its command line says `--name NAME`.
bool is_supervisor_of(pid_t pid, const std::string& name) {
  if (pid <= 0) return false;
  auto cmdline = sys::read_file("/proc/" + std::to_string(pid) + "/cmdline", 64 * 1024);
  return cmdline && cmdline->find(std::string("\0--name\0", 8) + name + '\0') != std::string::npos;
}

// Whether the process still runs. A pidfd turns readable when it exits, zombie or not: its
// parent is whoever reaps detached processes on this host, possibly late.
bool alive(pid_t pid) {
  UniqueFd fd = sys::pidfd_open(pid);
  if (!fd) return false;
  pollfd p{fd.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

// A request to a supervisor over a fresh connection; the reply is read from the connection.
Result<UniqueFd> send_request(const std::string& socket, const control::Request& request) {
  auto frame = control::encode_request(request);
  if (!frame) return frame.error();
  auto fd = sys::connect_seqpacket(socket);
  if (!fd) return fd.error();
  if (int err = sys::send_message(fd->get(), frame->data(), frame->size(), {}); err != 0)
    return Error::from_errno("sending to " + socket, err);
  return std::move(*fd);
}

// With `fds`, the descriptors that came with the reply (at most one) land there.
Result<control::Reply> read_reply(int fd, const std::string& socket, int timeout_ms,
                                  std::vector<UniqueFd>* fds = nullptr) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, std::max(timeout_ms, 0)) != 1)
    return Error::from_errno("waiting for " + socket, ETIMEDOUT);
  auto message = sys::receive_message(fd, control::kMaxFrame, fds != nullptr ? 1 : 0);
  if (!message) return message.error();
  if (!message->has_value()) return Error::invalid(socket + " closed without a reply");
  if (fds != nullptr) *fds = std::move((*message)->fds);
  return control::parse_reply((*message)->frame);
}

// One request and its single reply.
Result<control::Reply> ask(const std::string& socket, const control::Request& request) {
  auto fd = send_request(socket, request);
  if (!fd) return fd.error();
  return read_reply(fd->get(), socket, 5000);
}

}  // namespace

// An exec (its control connection) or a run (its status socket) waiting for the command's end.
struct Manager::PendingExec {
  Manager* manager = nullptr;
  uint64_t ticket = 0;
  std::string run_of;  // a run's sandbox (its status socket is `socket`); "" for an exec
  UniqueFd socket;
  sd_event_source* source = nullptr;
  std::function<void(const ExecOutcome&)> done;
  std::string status;  // a run's status lines so far
  std::string log;     // a run's supervisor log, for why it did not start
  std::string command;  // a run's argv[0], for why it could not be run

  void finish(const ExecOutcome& outcome) {
    auto callback = std::move(done);
    if (source != nullptr) sd_event_source_unref(source);
    source = nullptr;
    Manager* m = manager;
    auto self = std::move(m->execs_.at(this));  // destroyed at the end of this scope
    m->execs_.erase(this);
    if (callback) callback(outcome);
  }
};

Manager::Manager(Config config, sd_event* event)
    : config_(std::move(config)), event_(event), registry_(config_.state_dir) {}

Manager::~Manager() {
  for (auto& [key, pending] : execs_) {
    (void)key;
    if (pending->source != nullptr) sd_event_source_unref(pending->source);
  }
}

std::string Manager::events_file(const std::string& name) const {
  return config_.log_dir + "/sandboxes/" + name + "/events.jsonl";
}

std::string Manager::control_socket(const std::string& name) const {
  return config_.runtime_dir + "/sandboxes/" + name + ".sock";
}

void Manager::refresh(SandboxRecord& record) const {
  if (record.phase != Phase::kRunning) return;
  control::Request status;
  status.op = control::Op::kStatus;
  auto reply = ask(control_socket(record.name), status);
  if (reply && reply->ok) {
    if (auto pid = reply->data.find("supervisor_pid"); pid != reply->data.end())
      record.supervisor_pid = pid->get<pid_t>();
    return;
  }
  // No answer from a supervisor that runs: it is still starting (its socket answers once the
  // agent runs), or busy. Only a gone one makes the sandbox stopped, with how it ended.
  if (is_supervisor_of(record.supervisor_pid, record.name)) return;
  record.phase = Phase::kStopped;
  const auto ended = outcome_from_file(events_file(record.name));
  record.reason = ended ? ended->reason : "the supervisor is gone";
  record.exit_code = ended ? ended->exit_status : std::nullopt;
  record.supervisor_pid = -1;
  (void)registry_.save(record);
}

Result<std::vector<std::string>> Manager::start() {
  // Events go to the journal too where there is one (and only there: the supervisor then
  // loads libsystemd at all).
  journal_ = ::access("/run/systemd/journal/socket", F_OK) == 0;
  spare_.start();
  if (config_.driver == "systemd" || (config_.driver == "auto" && sd_booted() > 0)) {
    auto driver = SystemdDriver::connect();
    if (!driver) return driver.error();
    systemd_.emplace(std::move(*driver));
  }
  for (const std::string& dir :
       {config_.runtime_dir, config_.runtime_dir + "/sandboxes", config_.log_dir,
        config_.log_dir + "/sandboxes"})
    if (auto st = make_dir(dir, 0700); !st) return st.error();
  if (auto st = registry_.init(); !st) return st.error();
  auto loaded = registry_.load_all();
  for (auto& record : loaded.records) {
    const pid_t recorded = record.supervisor_pid;
    refresh(record);
    sandboxes_[record.name] = record;
    if (record.ephemeral) adopt_ephemeral(record.name, recorded);
  }
  return loaded.problems;
}

struct Manager::Orphan {
  Manager* manager = nullptr;
  std::string name;
  UniqueFd pidfd;
  sd_event_source* source = nullptr;
  ~Orphan() { sd_event_source_disable_unref(source); }
};

void Manager::adopt_ephemeral(const std::string& name, pid_t supervisor) {
  auto orphan = std::make_unique<Orphan>();
  orphan->manager = this;
  orphan->name = name;
  // Its supervisor by the process itself, not by its control socket: one still starting has no
  // answer yet, and its sandbox must not be removed under it.
  if (!systemd_ && is_supervisor_of(supervisor, name)) orphan->pidfd = sys::pidfd_open(supervisor);
  auto on_exit = [](sd_event_source*, int, uint32_t, void* userdata) -> int {
    auto* o = static_cast<Orphan*>(userdata);
    Manager* m = o->manager;
    const std::string gone = o->name;  // remove() destroys o, and its event source with it
    m->remove_orphan(gone);
    return 0;
  };
  if (orphan->pidfd && sd_event_add_io(event_, &orphan->source, orphan->pidfd.get(), EPOLLIN,
                                       on_exit, orphan.get()) >= 0) {
    orphans_[name] = std::move(orphan);
    return;
  }
  // Ended already, or under the systemd driver (its run sandboxes hold the command as an exec,
  // which went with the caller's connection): nothing is left to wait for.
  remove_orphan(name);
}

void Manager::remove_orphan(const std::string& name) {
  // Asked first, so that a supervisor gone for good is not waited for by a pid that may have
  // been reused since.
  if (auto it = sandboxes_.find(name); it != sandboxes_.end()) refresh(it->second);
  remove(name, [name](const Status& st) {
    if (!st)
      log::warn(kComponent, st.error().message());
    else
      log::info(kComponent, "removed " + name + ": a run whose caller left with an earlier daemon");
  });
}

Result<pid_t> Manager::spawn_supervisor(const SandboxRecord& record, const std::string& policy_file,
                                        Attach* attach, bool wait) {
  // /sandbox: the caller's own directory (checked again: it may have changed since), or a
  // workspace of the sandbox's own, where the agent writes as the caller, or as nobody for
  // root's sandboxes (the supervisor refuses a root-owned workspace).
  const bool own_workspace = record.workdir.empty();
  const std::string workspace = own_workspace ? registry_.workspace(record.name) : record.workdir;
  if (own_workspace) {
    if (auto st = make_dir(workspace, 0700); !st) return st.error();
    // Root's sandboxes write as an id of their own, never as nobody (shared by every root
    // sandbox and by host daemons). A workspace an earlier version gave to nobody moves over.
    const uid_t owner =
        record.owner_uid == 0 ? sandbox_outside_id(record.name) : record.owner_uid;
    struct stat was {};
    if (::lstat(workspace.c_str(), &was) == 0 && was.st_uid == kNobody && owner != kNobody)
      give_tree(workspace, owner);
    if (::chown(workspace.c_str(), owner, owner) != 0)
      return Error::from_errno("chown " + workspace);
  } else if (auto dir = open_workdir(workspace, record.owner_uid); !dir) {
    return dir.error();
  }
  const std::string logs = config_.log_dir + "/sandboxes/" + record.name;
  if (auto st = make_dir(logs, 0700); !st) return st.error();

  std::vector<std::string> args = {config_.supervisor, "run",
                                   "--policy-file",    policy_file,
                                   "--name",           record.name,
                                   "--workdir",        workspace,
                                   "--control",        control_socket(record.name),
                                   "--events",         logs + "/events.jsonl"};
  if (own_workspace) args.emplace_back("--workdir-from-daemon");
  if (record.workdir_readonly) args.emplace_back("--workdir-readonly");
  for (const auto& kv : record.env) args.insert(args.end(), {"--env", kv});
  if (journal_) args.emplace_back("--journal");
  if (systemd_) args.emplace_back("--cgroup-delegated");
  // A member's sandbox shows it nothing of the host it could not reach itself.
  if (record.owner_uid != 0) args.insert(args.end(), {"--owner", std::to_string(record.owner_uid)});
  for (const auto& assignment : policy::resource_assignments(config_.sandbox_defaults))
    args.insert(args.end(), {"--default", assignment});
  // The supervisor's own log: the unit's journal, or a file beside the events.
  const std::string log_file = logs + "/supervisor.log";
  if (attach != nullptr) {
    // stdio is the caller's (the agent's); our lines go to the file; the status socket is fd 3.
    if (systemd_) return Error::invalid("attached runs are for the direct driver");
    args.insert(args.end(), {"--log", log_file, "--status-fd", "3"});
    for (const auto& kv : attach->env) args.insert(args.end(), {"--env", kv});
  }
  args.emplace_back("--");
  args.insert(args.end(), record.command.begin(), record.command.end());

  pid_t supervisor = -1;
  if (systemd_) {
    const std::string unit = sandbox_unit(record.name);
    auto parsed = policy::parse_policy_file(policy_file);
    if (!parsed.ok()) return Error::invalid("revision " + policy_file + " does not parse");
    if (auto st = systemd_->start(
            unit, "openshell sandbox " + record.name, args,
            unit_limits(policy::with_defaults(parsed.policy->resources, config_.sandbox_defaults)));
        !st)
      return st.error();
  } else {
    auto pid = spawn_detached(args, log_file, attach, spare_.take());
    if (!pid) return pid.error();
    supervisor = *pid;
    if (attach != nullptr) return supervisor;  // its status socket tells the rest
  }
  if (!wait) return supervisor;

  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  auto pause = std::chrono::milliseconds(1);  // up to kStartPollMax
  while (std::chrono::steady_clock::now() < deadline) {
    auto up = started(record, supervisor);
    if (!up) return up.error();
    if (up->has_value()) return **up;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kStartPollMax);
  }
  return start_timed_out(record.name, supervisor);
}

// The direct driver: the supervisor in a session of its own, started with posix_spawn (a
// vfork: the double fork this replaced copied the daemon's page tables twice, ~2.5 ms of every
// start). It is our child and outlives us all the same; while we run, the SIGCHLD handler reaps
// it, as it does the supervisors of an earlier daemon (we are their subreaper).
Result<pid_t> Manager::spawn_detached(std::vector<std::string> args, const std::string& log_file,
                                      const Attach* attach, UniqueFd netns) {
  // Descriptors from 3 (4 with the status socket) on: the ones given to the supervisor.
  int next_fd = attach != nullptr ? 4 : 3;
  const int netns_fd = netns ? next_fd++ : -1;
  if (netns_fd >= 0)  // an option of `run`, args[1]
    args.insert(args.begin() + 2, {"--netns-fd", std::to_string(netns_fd)});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  struct Spawn {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    Spawn() {
      posix_spawn_file_actions_init(&actions);
      posix_spawnattr_init(&attr);
    }
    ~Spawn() {
      posix_spawn_file_actions_destroy(&actions);
      posix_spawnattr_destroy(&attr);
    }
    Spawn(const Spawn&) = delete;
    Spawn& operator=(const Spawn&) = delete;
  } spawn;
  // Not our event loop's blocked signals nor its dispositions: a mask survives exec.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  int rc = posix_spawnattr_setsigmask(&spawn.attr, &none);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&spawn.attr, &all);
  if (rc == 0)
    rc = posix_spawnattr_setflags(
        &spawn.attr,
        static_cast<short>(POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
  // The caller's stdio as 0, 1, 2 and the status socket as 3, through copies above 9 so that no
  // dup2 meets its own target; or /dev/null and the log file.
  std::vector<UniqueFd> copies;
  auto give = [&](int fd, int target) {
    UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 10));
    if (!copy) return errno;
    const int err = posix_spawn_file_actions_adddup2(&spawn.actions, copy.get(), target);
    copies.push_back(std::move(copy));
    return err;
  };
  if (attach != nullptr) {
    for (int i = 0; i < 3 && rc == 0; ++i)
      rc = give(attach->stdio[static_cast<size_t>(i)].get(), i);
    if (rc == 0) rc = give(attach->status_write.get(), 3);
  } else {
    if (rc == 0) rc = posix_spawn_file_actions_addopen(&spawn.actions, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
      rc = posix_spawn_file_actions_addopen(&spawn.actions, 1, log_file.c_str(),
                                            O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&spawn.actions, 1, 2);
  }
  if (rc == 0 && netns_fd >= 0) rc = give(netns.get(), netns_fd);
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&spawn.actions, next_fd);
  if (rc != 0) return Error::from_errno("preparing the supervisor's start", rc);
  pid_t pid = -1;
  if (int err = ::posix_spawn(&pid, argv[0], &spawn.actions, &spawn.attr, argv.data(), environ);
      err != 0)
    return Error::from_errno("could not start the supervisor " + args[0], err);
  return pid;
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

void Manager::create(const std::string& name, const std::string& policy,
                     std::vector<std::string> command, uid_t owner, SandboxOptions options,
                     Created done) {
  auto np = new_policy(policy, "", "");
  if (!np) return done(np.error());
  create_later(name, *np, std::move(command), owner, std::move(options), std::move(done));
}

void Manager::create_with_text(const std::string& name, const std::string& text,
                               const std::string& source, std::vector<std::string> command,
                               uid_t owner, SandboxOptions options, Created done) {
  auto np = new_policy("", text, source.empty() ? "<policy>" : source);
  if (!np) return done(np.error());
  create_later(name, *np, std::move(command), owner, std::move(options), std::move(done));
}

Result<SandboxRecord> Manager::create_from(const std::string& name, const NewPolicy& np,
                                           std::vector<std::string> command, uid_t owner,
                                           SandboxOptions options, bool ephemeral) {
  SandboxRecord record;
  record.ephemeral = ephemeral;
  if (auto st = prepare_record(name, np, record, std::move(command), owner, std::move(options));
      !st)
    return st.error();
  auto pid = spawn_supervisor(record, registry_.revision_path(name, record.revision));
  return finish_create(std::move(record), std::move(pid));
}

Result<SandboxRecord> Manager::finish_create(SandboxRecord record, Result<pid_t> supervisor) {
  if (!supervisor) {
    record.phase = Phase::kFailed;
    record.reason = supervisor.error().message();
    if (auto ended = outcome_from_file(events_file(record.name))) record.exit_code = ended->exit_status;
    (void)registry_.save(record);
    sandboxes_[record.name] = record;
    return supervisor.error();
  }
  if (auto st = mark_running(record, *supervisor); !st) return st.error();
  return record;
}

struct Manager::Starting {
  Manager* manager = nullptr;
  SandboxRecord record;
  pid_t supervisor = -1;  // -1 under the systemd driver: the unit's, learnt when it answers
  std::chrono::steady_clock::time_point deadline;
  std::chrono::milliseconds pause{1};
  sd_event_source* timer = nullptr;
  Created done;
  ~Starting() { sd_event_source_disable_unref(timer); }
};

void Manager::create_later(const std::string& name, const NewPolicy& np,
                           std::vector<std::string> command, uid_t owner, SandboxOptions options,
                           Created done) {
  SandboxRecord record;
  if (auto st = prepare_record(name, np, record, std::move(command), owner, std::move(options));
      !st)
    return done(st.error());
  auto pid = spawn_supervisor(record, registry_.revision_path(name, record.revision), nullptr,
                              /*wait=*/false);
  if (!pid) return done(finish_create(std::move(record), std::move(pid)));
  sandboxes_[name] = record;  // creating: the name is taken, and others see it
  auto s = std::make_unique<Starting>();
  s->manager = this;
  s->supervisor = *pid;
  s->deadline = std::chrono::steady_clock::now() + kStartTimeout;
  s->done = std::move(done);
  auto on_tick = [](sd_event_source*, uint64_t, void* userdata) -> int {
    auto* st = static_cast<Starting*>(userdata);
    st->manager->poll_start(st->record.name);  // may destroy *st
    return 0;
  };
  // The first poll after 1 ms, then as spawn_supervisor's wait does (up to kStartPollMax).
  if (int rc =
          sd_event_add_time_relative(event_, &s->timer, CLOCK_MONOTONIC, 1000, 0, on_tick, s.get());
      rc < 0) {
    if (*pid > 0) ::kill(*pid, SIGKILL);
    sandboxes_.erase(name);
    return s->done(finish_create(std::move(record),
                                 Error::from_errno("watching the supervisor's start", -rc)));
  }
  s->record = std::move(record);
  starting_[name] = std::move(s);
}

void Manager::poll_start(const std::string& name) {
  auto it = starting_.find(name);
  if (it == starting_.end()) return;
  Starting& s = *it->second;
  auto up = started(s.record, s.supervisor);
  Result<pid_t> outcome = Error::invalid("not started");
  if (up && !up->has_value()) {
    if (std::chrono::steady_clock::now() < s.deadline) {
      s.pause = std::min(s.pause * 2, kStartPollMax);
      const auto next = std::chrono::duration_cast<std::chrono::microseconds>(s.pause).count();
      if (sd_event_source_set_time_relative(s.timer, static_cast<uint64_t>(next)) >= 0 &&
          sd_event_source_set_enabled(s.timer, SD_EVENT_ONESHOT) >= 0)
        return;
    }
    outcome = start_timed_out(name, s.supervisor);
  } else if (!up) {
    outcome = up.error();
  } else {
    outcome = **up;
  }
  auto owned = std::move(starting_.extract(it).mapped());
  Created done = std::move(owned->done);
  SandboxRecord record = std::move(owned->record);
  owned.reset();  // its timer with it
  done(finish_create(std::move(record), std::move(outcome)));
}

Result<std::optional<pid_t>> Manager::started(const SandboxRecord& record, pid_t supervisor) {
  control::Request status;
  status.op = control::Op::kStatus;
  if (auto reply = ask(control_socket(record.name), status); reply && reply->ok)
    return std::optional<pid_t>(reply->data.value("supervisor_pid", supervisor));
  const bool gone = systemd_ ? !systemd_->active(sandbox_unit(record.name)) : !alive(supervisor);
  if (!gone) return std::optional<pid_t>();
  // Its events say how the command ended (at once, not found, ...) or what could not be built.
  if (auto ended = outcome_from_file(events_file(record.name)))
    return Error::invalid("sandbox " + record.name + " ended during start: " + ended->reason);
  // Else its last words say why.
  const std::string why =
      systemd_ ? " (unit " + systemd_->state(sandbox_unit(record.name)) + ")"
               : ": " + last_line(config_.log_dir + "/sandboxes/" + record.name + "/supervisor.log");
  return Error::invalid("the supervisor exited during start" + (why == ": " ? "" : why) +
                        "; see " + supervisor_log_hint(record.name));
}

Error Manager::start_timed_out(const std::string& name, pid_t supervisor) const {
  if (supervisor > 0) ::kill(supervisor, SIGKILL);
  return Error::from_errno("the supervisor did not come up; see " + supervisor_log_hint(name),
                           ETIMEDOUT);
}

std::string Manager::supervisor_log_hint(const std::string& name) const {
  if (systemd_) return "journalctl -u " + sandbox_unit(name);
  return config_.log_dir + "/sandboxes/" + name + "/supervisor.log";
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

Status Manager::prepare_record(const std::string& name, const NewPolicy& np,
                               SandboxRecord& record, std::vector<std::string> command,
                               uid_t owner, SandboxOptions options) {
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
  retire_logs(name);  // of an earlier sandbox of this name whose removal did not get that far
  if (sandboxes_.size() >= config_.max_sandboxes)
    return Error::from_errno("at most " + std::to_string(config_.max_sandboxes) + " sandboxes",
                             EAGAIN);
  if (owner != 0 &&
      std::count_if(sandboxes_.begin(), sandboxes_.end(), [owner](const auto& entry) {
        return entry.second.owner_uid == owner;
      }) >= static_cast<std::ptrdiff_t>(config_.max_sandboxes_per_user))
    return Error::from_errno("at most " + std::to_string(config_.max_sandboxes_per_user) +
                                 " sandboxes per user (max_sandboxes_per_user); delete one first",
                             EAGAIN);
  auto parsed = validate_policy(np.text, np.source);
  if (!parsed) return parsed.error();
  if (auto st = check_limits(**parsed, owner); !st) return st.error();
  if (!options.workdir.empty())
    if (auto dir = open_workdir(options.workdir, owner); !dir) return dir.error();
  if (auto st = control::check_env(options.env); !st) return st;
  if (command.empty()) command = {"/bin/sleep", "infinity"};
  record.workdir = std::move(options.workdir);
  record.workdir_readonly = options.workdir_readonly;
  record.env = std::move(options.env);
  record.name = name;
  record.policy = np.name;
  record.pinned = np.name.empty();  // its own policy: reloads have nothing to give it
  record.owner_uid = owner;
  record.command = std::move(command);
  record.created_unix_ms = now_unix_ms();
  record.phase = Phase::kCreating;
  record.source = np.origin;
  auto revision = registry_.add_revision(name, np.text, np.origin, durability_of(record));
  if (!revision) return revision.error();
  record.revision = *revision;
  // The record itself is written once its supervisor runs (or failed to): a record saved as
  // "creating" first would cost every start a durable write and tell a restarted daemon
  // nothing it could act on.
  return {};
}

Status Manager::mark_running(SandboxRecord& record, pid_t supervisor) {
  record.supervisor_pid = supervisor;
  record.phase = Phase::kRunning;
  if (auto st = registry_.save(record); !st) return st.error();
  sandboxes_[record.name] = record;
  log::info(kComponent, "sandbox " + record.name + " running (supervisor pid " +
                            std::to_string(supervisor) + ")");
  return {};
}

std::vector<SandboxRecord> Manager::list() const {
  std::vector<SandboxRecord> out;
  for (const auto& [name, record] : sandboxes_) {
    (void)name;
    SandboxRecord r = record;
    refresh(r);
    out.push_back(r);
  }
  return out;
}

Result<SandboxRecord> Manager::get(const std::string& name) const {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  SandboxRecord r = it->second;
  refresh(r);
  return r;
}

// A supervisor asked to shut down over its control socket (SIGTERM to the main process, SIGKILL
// after the supervisor's grace), watched on the loop through its pidfd, and killed if it
// outstays kStopTimeout; `waiting` are the callers to answer once it is gone.
struct Manager::Stopping {
  Manager* manager = nullptr;
  std::string name;
  bool remove_after = false;
  std::vector<std::function<void(Status)>> waiting;
  UniqueFd pidfd;
  sd_event_source* exited = nullptr;
  sd_event_source* deadline = nullptr;
  ~Stopping() {
    sd_event_source_disable_unref(exited);
    sd_event_source_disable_unref(deadline);
  }
};

void Manager::stop(const std::string& name, std::function<void(Status)> done) {
  stop_then(name, false, std::move(done));
}

void Manager::remove(const std::string& name, std::function<void(Status)> done) {
  stop_then(name, true, std::move(done));
}

void Manager::stop_then(const std::string& name, bool remove_after,
                        std::function<void(Status)> done) {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) {
    done(Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT));
    return;
  }
  if (starting_.contains(name)) return done(refuse_if_busy(name));
  if (auto joined = stopping_.find(name); joined != stopping_.end()) {
    joined->second->remove_after |= remove_after;
    joined->second->waiting.push_back(std::move(done));
    return;
  }
  SandboxRecord& record = it->second;
  refresh(record);
  UniqueFd pidfd;
  if (record.phase == Phase::kRunning) {
    control::Request shutdown;
    shutdown.op = control::Op::kShutdown;
    (void)ask(control_socket(name), shutdown);
    pidfd = sys::pidfd_open(record.supervisor_pid);
  }
  if (!pidfd) {  // not running, or gone already
    done(after_stop(name, remove_after));
    return;
  }
  auto s = std::make_unique<Stopping>();
  s->manager = this;
  s->name = name;
  s->remove_after = remove_after;
  s->waiting.push_back(std::move(done));
  s->pidfd = std::move(pidfd);
  auto on_exited = [](sd_event_source*, int, uint32_t, void* userdata) -> int {
    auto* st = static_cast<Stopping*>(userdata);
    st->manager->end_stop(std::string(st->name));  // destroys *st
    return 0;
  };
  // Past the deadline the supervisor is killed; its exit still ends the wait.
  auto on_deadline = [](sd_event_source*, uint64_t, void* userdata) -> int {
    auto* st = static_cast<Stopping*>(userdata);
    log::warn(kComponent, "sandbox " + st->name + " did not stop within 15 s: killing it");
    ::syscall(SYS_pidfd_send_signal, st->pidfd.get(), SIGKILL, nullptr, 0);
    return 0;
  };
  const uint64_t timeout_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(kStopTimeout).count());
  int rc = sd_event_add_io(event_, &s->exited, s->pidfd.get(), EPOLLIN, on_exited, s.get());
  if (rc >= 0)
    rc = sd_event_add_time_relative(event_, &s->deadline, CLOCK_MONOTONIC, timeout_us, 0,
                                    on_deadline, s.get());
  if (rc < 0) {
    // No watch to be had (out of memory or descriptors): the supervisor is killed rather than
    // left half stopped.
    log::warn(kComponent, "cannot watch " + name + " stopping (" + std::strerror(-rc) +
                              "): killing its supervisor");
    ::syscall(SYS_pidfd_send_signal, s->pidfd.get(), SIGKILL, nullptr, 0);
    pollfd p{s->pidfd.get(), POLLIN, 0};
    (void)::poll(&p, 1, 5000);
    auto callbacks = std::move(s->waiting);
    s.reset();
    const Status st = after_stop(name, remove_after);
    for (auto& callback : callbacks) callback(st);
    return;
  }
  stopping_[name] = std::move(s);
}

void Manager::end_stop(const std::string& name) {
  auto node = stopping_.extract(name);
  if (node.empty()) return;
  const auto s = std::move(node.mapped());
  const Status st = after_stop(name, s->remove_after);
  for (auto& callback : s->waiting) callback(st);
}

Status Manager::after_stop(const std::string& name, bool remove_after) {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) {
    // Removed meanwhile (a run whose command ended): what a removal asked for.
    if (remove_after) return {};
    return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  }
  SandboxRecord& record = it->second;
  if (record.reason.empty() || record.supervisor_pid > 0) record.reason = "stopped on request";
  if (auto ended = outcome_from_file(events_file(name))) record.exit_code = ended->exit_status;
  record.phase = Phase::kStopped;
  record.supervisor_pid = -1;
  if (remove_after) return forget(name);
  return registry_.save(record);
}

Status Manager::refuse_if_busy(const std::string& name) const {
  if (starting_.contains(name))
    return Error::from_errno("sandbox " + name.substr(0, 64) + " is starting", EBUSY);
  if (stopping_.contains(name))
    return Error::from_errno("sandbox " + name.substr(0, 64) + " is stopping", EBUSY);
  return {};
}

Result<bool> Manager::start(const std::string& name) {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  if (auto st = refuse_if_busy(name); !st) return st.error();
  SandboxRecord& record = it->second;
  refresh(record);
  if (record.phase == Phase::kRunning) return false;  // nothing to do
  const std::string policy_file = registry_.revision_path(name, record.revision);
  if (::access(policy_file.c_str(), R_OK) != 0)
    return Error::from_errno("revision " + std::to_string(record.revision) + " of " + name +
                             " is missing");
  // The caps may have changed since the revision was made (a new openshelld.toml).
  auto parsed = policy::parse_policy_file(policy_file);
  if (!parsed.ok())
    return Error::invalid("revision " + std::to_string(record.revision) + " of " + name +
                          " does not parse with this version: " +
                          (parsed.diagnostics.empty() ? std::string("invalid")
                                                      : parsed.diagnostics.front().to_string()));
  if (auto st = check_limits(*parsed.policy, record.owner_uid); !st) return st.error();
  auto pid = spawn_supervisor(record, policy_file);
  if (!pid) {
    record.phase = Phase::kFailed;
    record.reason = pid.error().message();
    (void)registry_.save(record);
    return pid.error();
  }
  record.supervisor_pid = *pid;
  record.phase = Phase::kRunning;
  record.reason.clear();
  record.exit_code.reset();
  if (auto st = registry_.save(record); !st) return st.error();
  return true;
}

Status Manager::forget(const std::string& name) {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  if (auto st = registry_.remove(name); !st) return st;
  retire_logs(name);
  sys::remove_socket_path(control_socket(name));  // left behind by a supervisor that was killed
  // Only a workspace of its own: a --workdir is the caller's, and stays.
  std::error_code ignored;
  if (it->second.workdir.empty()) std::filesystem::remove_all(registry_.workspace(name), ignored);
  sandboxes_.erase(it);
  orphans_.erase(name);
  return {};
}

void Manager::retire_logs(const std::string& name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path from = config_.log_dir + "/sandboxes/" + name;
  if (!fs::exists(fs::symlink_status(from, ec))) return;
  const fs::path removed = config_.log_dir + "/removed";
  if (config_.removed_logs_kept > 0 && make_dir(removed.string(), 0700).ok()) {
    // The removal time first, zero-padded: names sort oldest first.
    char stamp[24];
    std::snprintf(stamp, sizeof stamp, "%013lld-", static_cast<long long>(now_unix_ms()));
    fs::rename(from, removed / (stamp + name), ec);
  } else {
    ec = std::make_error_code(std::errc::operation_canceled);
  }
  if (ec) fs::remove_all(from, ec);  // not kept: gone all the same, never left for the name
  if (ec) log::warn(kComponent, "cannot remove " + from.string() + ": " + ec.message());

  std::vector<std::string> kept;
  for (fs::directory_iterator it(removed, ec), end; !ec && it != end; it.increment(ec))
    kept.push_back(it->path().filename().string());
  if (kept.size() <= config_.removed_logs_kept) return;
  std::sort(kept.begin(), kept.end());
  for (size_t i = 0; i + config_.removed_logs_kept < kept.size(); ++i)
    fs::remove_all(removed / kept[i], ec);
}

Result<uint64_t> Manager::exec(const std::string& name, std::vector<std::string> argv,
                               std::vector<std::string> env, std::string cwd,
                               std::vector<UniqueFd> stdio,
                               std::function<void(const ExecOutcome&)> done) {
  auto record = get(name);
  if (!record) return record.error();
  if (auto st = refuse_if_busy(name); !st) return st.error();
  if (record->phase != Phase::kRunning)
    return Error::invalid("sandbox " + name + " is " + std::string(to_string(record->phase)));
  control::Request request;
  request.op = control::Op::kExec;
  request.exec.argv = std::move(argv);
  request.exec.env = std::move(env);
  request.exec.cwd = std::move(cwd);
  request.exec.tty = stdio.size() == 1;  // a pty's slave, the command's controlling terminal
  auto frame = control::encode_request(request);
  if (!frame) return frame.error();
  auto fd = sys::connect_seqpacket(control_socket(name));
  if (!fd) return fd.error();
  std::vector<int> fds;
  for (const auto& f : stdio) fds.push_back(f.get());
  if (int err = sys::send_message(fd->get(), frame->data(), frame->size(), fds); err != 0)
    return Error::from_errno("sending the command to the sandbox", err);

  auto pending = std::make_unique<PendingExec>();
  pending->manager = this;
  pending->ticket = next_ticket_++;
  pending->socket = std::move(*fd);
  pending->done = std::move(done);
  PendingExec* raw = pending.get();
  auto on_reply = [](sd_event_source*, int, uint32_t, void* userdata) -> int {
    auto* p = static_cast<PendingExec*>(userdata);
    auto message = sys::receive_message(p->socket.get(), control::kMaxFrame, 0);
    ExecOutcome outcome;
    if (!message || !message->has_value()) {
      outcome.error = "the sandbox ended before the command did";
      p->finish(outcome);
      return 0;
    }
    auto reply = control::parse_reply((*message)->frame);
    if (!reply) {
      outcome.error = "bad reply from the supervisor: " + reply.error().message();
      p->finish(outcome);
      return 0;
    }
    if (!reply->ok) {
      outcome.error = reply->error;
      outcome.exit_code = reply->data.value("exit_code", -1);  // 126, 127: the command's fault
      p->finish(outcome);
      return 0;
    }
    if (reply->data.value("event", "") == "exited") {
      outcome.ok = true;
      outcome.exit_code = reply->data.value("exit_code", -1);
      outcome.signal = reply->data.value("signal", 0);
      p->finish(outcome);
    }
    return 0;  // "started": wait for more
  };
  if (int rc = sd_event_add_io(event_, &raw->source, raw->socket.get(), EPOLLIN, on_reply, raw);
      rc < 0)
    return Error::from_errno("watching the exec", -rc);
  execs_[raw] = std::move(pending);
  return raw->ticket;
}

namespace {

std::string random_run_name() {
  unsigned char bytes[4] = {};
  UniqueFd fd(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  if (fd) (void)!::read(fd.get(), bytes, sizeof bytes);
  char name[16];
  std::snprintf(name, sizeof name, "run-%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return name;
}

}  // namespace

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
  // One sandbox for one command, removed before the reply: the command's end is the reply.
  auto finish = [this, name, done = std::move(done)](const ExecOutcome& outcome) {
    if (systemd_) {
      // The unit still holds the sandbox with its default command: stopped and removed first,
      // then the answer.
      remove(name, [name, done, outcome](const Status& st) {
        if (!st) log::warn(kComponent, "removing " + name + ": " + st.error().message());
        done(outcome);
      });
      return;
    }
    auto it = sandboxes_.find(name);
    if (it != sandboxes_.end() && it->second.supervisor_pid > 0) {
      // It is ending: do not ask it to stop. Its "exit N" comes once the sandbox is gone
      // (agent, cgroup, mounts, network), so only the process's own exit is left; without that
      // line, wait for the process.
      if (!outcome.ok) {
        UniqueFd fd = sys::pidfd_open(it->second.supervisor_pid);
        pollfd p{fd.get(), POLLIN, 0};
        if (fd) (void)::poll(&p, 1, 5000);
      }
      it->second.phase = Phase::kStopped;
    }
    // The reply first, the removal (~0.7 ms of unlinking) after it: both happen in this one
    // dispatch, so no call the caller makes after the reply can see the sandbox.
    done(outcome);
    remove(name, [](const Status& st) {
      if (!st) log::warn(kComponent, st.error().message());
    });
  };

  // A run that fails before its command's end leaves nothing: record, revisions, workspace and
  // logs go (and its supervisor, if one runs), as at a run's normal end.
  auto discard = [this, &name](const Error& why, const SandboxRecord* made) -> Error {
    if (made != nullptr && !sandboxes_.contains(name)) sandboxes_[name] = *made;
    if (sandboxes_.contains(name)) {
      remove(name, [](const Status& st) {
        if (!st) log::warn(kComponent, st.error().message());
      });
    }
    return why;
  };

  if (systemd_) {
    // A unit cannot take the caller's descriptors and report the status the way a process we
    // start can: hold the sandbox with its default command, exec, delete.
    auto created = create_from(name, *np, {}, owner, std::move(options), /*ephemeral=*/true);
    if (!created) return discard(created.error(), nullptr);
    auto ticket = exec(name, std::move(argv), std::move(env), "", std::move(stdio), finish);
    if (!ticket) return discard(ticket.error(), nullptr);
    return ticket;
  }

  SandboxRecord record;
  record.ephemeral = true;
  options.env.clear();  // a run's environment goes to its command, not to a record
  if (auto st = prepare_record(name, *np, record, std::move(argv), owner, std::move(options)); !st)
    return discard(st.error(), nullptr);  // nothing made but, perhaps, its revision
  // A socket, not a pipe: if we are gone when the supervisor reports, it gets EPIPE
  // (MSG_NOSIGNAL), not SIGPIPE.
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return discard(Error::from_errno("socketpair"), &record);
  UniqueFd status_read(pair[0]);
  Attach attach{std::move(stdio), UniqueFd(pair[1]), std::move(env)};
  auto pid = spawn_supervisor(record, registry_.revision_path(name, record.revision), &attach);
  attach = Attach{};  // the supervisor holds them now; the socket's EOF is its end
  if (!pid) return discard(pid.error(), &record);
  if (auto st = mark_running(record, *pid); !st) {
    record.supervisor_pid = *pid;
    record.phase = Phase::kRunning;
    return discard(st.error(), &record);
  }

  auto pending = std::make_unique<PendingExec>();
  pending->manager = this;
  pending->ticket = next_ticket_++;
  pending->run_of = name;
  pending->socket = std::move(status_read);
  pending->log = config_.log_dir + "/sandboxes/" + name + "/supervisor.log";
  pending->command = record.command.front();
  pending->done = std::move(finish);
  PendingExec* raw = pending.get();
  auto on_status = [](sd_event_source*, int, uint32_t, void* userdata) -> int {
    auto* p = static_cast<PendingExec*>(userdata);
    char buf[256];
    const ssize_t n = ::read(p->socket.get(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
    if (n > 0 && p->status.size() < 4096) {
      p->status.append(buf, static_cast<size_t>(n));
      // Done at the last line, not at EOF: the process's exit after it costs ~2 ms.
      const auto last = p->status.find("exit ");
      if (last == std::string::npos || p->status.find('\n', last) == std::string::npos) return 0;
    }
    // The end: "launched" once the command ran, "exit N" last.
    ExecOutcome outcome;
    const auto exit_at = p->status.find("exit ");
    const bool launched = p->status.find("launched\n") != std::string::npos;
    if (launched && exit_at != std::string::npos) {
      outcome.ok = true;
      outcome.exit_code = std::atoi(p->status.c_str() + exit_at + 5);
    } else {
      const std::string why = last_line(p->log);
      outcome.error = launched ? "the sandbox ended without a status"
                               : "the sandbox did not start" + (why.empty() ? "" : ": " + why);
      // Not launched, and the supervisor's own status as a shell's: the command was the problem.
      const int code = exit_at == std::string::npos ? -1 : std::atoi(p->status.c_str() + exit_at + 5);
      if (!launched && (code == 126 || code == 127)) {
        outcome.exit_code = code;
        outcome.error = "cannot run " + p->command + ": " + std::strerror(code == 127 ? ENOENT : EACCES);
      }
    }
    p->finish(outcome);
    return 0;
  };
  if (int rc = sd_event_add_io(event_, &raw->source, raw->socket.get(), EPOLLIN, on_status, raw);
      rc < 0)
    return discard(Error::from_errno("watching the run", -rc), nullptr);
  execs_[raw] = std::move(pending);
  return raw->ticket;
}

Status Manager::signal(uint64_t ticket, int sig) {
  for (const auto& [raw, pending] : execs_) {
    if (pending->ticket != ticket) continue;
    control::Request request;
    request.op = control::Op::kSignal;
    request.signal = sig;
    if (!pending->run_of.empty()) {
      // A run's command is its sandbox's main process: through init, which passes it on.
      request.main = true;
      auto reply = ask(control_socket(pending->run_of), request);
      if (!reply) return reply.error();
      if (!reply->ok) return Error::invalid(reply->error);
      return {};
    }
    // An exec's, over its own control connection (its reply comes among the exec's, and is
    // passed by: it carries no event).
    auto frame = control::encode_request(request);
    if (!frame) return frame.error();
    if (int err = sys::send_message(pending->socket.get(), frame->data(), frame->size(), {});
        err != 0)
      return Error::from_errno("signalling the command", err);
    return {};
  }
  return {};  // ended already
}

void Manager::abandon(uint64_t ticket) {
  for (const auto& [raw, pending] : execs_) {
    if (pending->ticket != ticket) continue;
    if (!pending->run_of.empty()) {
      // The run's command is its sandbox's main process: the sandbox stops, and its "exit N"
      // ends the run as any end does (removal included).
      control::Request shutdown;
      shutdown.op = control::Op::kShutdown;
      (void)ask(control_socket(pending->run_of), shutdown);
      return;
    }
    // Closing the exec's control connection is what makes the supervisor kill the command.
    ExecOutcome outcome;
    outcome.error = "the caller went away";
    raw->finish(outcome);
    return;
  }
}

Manager::ReloadReport Manager::reload_policies() {
  ReloadReport report;
  PolicySet set = load_policies(config_.policy_dir);
  if (!set.ok()) {
    report.diagnostics = std::move(set.diagnostics);
    log::warn(kComponent, "policy reload rejected: " + report.diagnostics.front());
    // The sandboxes that would have taken it say so in their own event streams.
    for (const auto& [name, record] : sandboxes_)
      if (record.phase == Phase::kRunning && !record.pinned)
        emit(ocsf::config_change(name, "Rejected", ocsf::Severity::kMedium,
                                 ocsf::StatusId::kFailure,
                                 "policy reload rejected; revision " +
                                     std::to_string(record.revision) + " stays in force: " +
                                     report.diagnostics.front(),
                                 {{"policy", {{"name", record.policy}}}}));
    return report;
  }
  // Pushed to every sandbox first, the replies collected after: each supervisor validates and
  // swaps on its own, so their work overlaps instead of queuing behind one another's.
  struct Push {
    SandboxRecord* record;
    const std::string* text;
    UniqueFd connection;
  };
  std::vector<Push> pushes;
  for (auto& [name, record] : sandboxes_) {
    // Not running: it reads its revision at start. Pinned: its policy was set directly, and
    // the named one no longer applies to it.
    if (record.phase != Phase::kRunning || record.pinned) continue;
    auto next = set.files.find(record.policy);
    if (next == set.files.end()) {
      report.failed.push_back(name + ": its policy '" + record.policy +
                              "' is gone; it keeps revision " + std::to_string(record.revision));
      continue;
    }
    const std::string& text = next->second.text;
    auto current = registry_.revision(name, record.revision);
    if (current && *current == text) continue;
    if (!static_changes(record, text).empty()) {
      report.needs_recreation.push_back(name);
      continue;
    }
    control::Request update;
    update.op = control::Op::kPolicyUpdate;
    update.policy_toml = text;
    auto sent = send_request(control_socket(name), update);
    if (!sent) {
      refresh(record);  // gone since: stopped, and it reads its revision at start
      if (record.phase == Phase::kRunning)
        report.failed.push_back(name + ": " + sent.error().message());
      continue;
    }
    pushes.push_back({&record, &text, std::move(*sent)});
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (auto& push : pushes) {
    const std::string& name = push.record->name;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto reply =
        read_reply(push.connection.get(), control_socket(name), static_cast<int>(left.count()));
    if (!reply || !reply->ok) {
      report.failed.push_back(name + ": " + (reply ? reply->error : reply.error().message()));
      continue;
    }
    // Not fsynced one by one (six fsyncs a sandbox): one syncfs below, before the reply.
    const std::string origin = "reload of policy " + push.record->policy;
    if (auto st = record_revision(*push.record, *push.text, origin, sys::Durability::kProcessCrash);
        !st) {
      report.failed.push_back(name + ": " + st.error().message());
      continue;
    }
    report.applied.push_back(name);
  }
  if (!report.applied.empty())
    if (auto st = registry_.sync(); !st) log::warn(kComponent, st.error().message());
  log::info(kComponent, "policies reloaded: " + std::to_string(report.applied.size()) +
                            " sandbox(es) updated");
  return report;
}

void Manager::emit(const ocsf::Event& event) {
  // Beside the supervisor's own lines: one O_APPEND write per event keeps lines whole, and
  // only the supervisor rotates the file (this sink never does).
  const std::string file = events_file(event.sandbox);
  if (auto sink = JsonlFileSink::open(file, UINT64_MAX)) (*sink)->emit(event);
  if (journal_) sys::JournalSink().emit(event);
}

Result<uint64_t> Manager::apply_revision(SandboxRecord& record, const std::string& text,
                                         const std::string& origin) {
  if (record.phase == Phase::kRunning) {
    if (auto changed = static_changes(record, text); !changed.empty()) {
      std::string all;
      for (const auto& c : changed) all += "\n  " + c;
      return Error{std::make_error_code(std::errc::operation_not_supported),
                   "sandbox " + record.name +
                       " runs: only [network_policies] may change while it does, and this "
                       "policy changes" +
                       all + "\nstop it and set the policy (it applies at the next start), or "
                             "re-create it"};
    }
    control::Request update;
    update.op = control::Op::kPolicyUpdate;
    update.policy_toml = text;
    auto reply = ask(control_socket(record.name), update);
    if (!reply) return reply.error();
    if (!reply->ok) return Error::invalid(reply->error);
  }
  // A stopped sandbox gets the whole policy at its next start.
  if (auto st = record_revision(record, text, origin, sys::Durability::kPowerLoss); !st)
    return st.error();
  return record.revision;
}

std::vector<std::string> Manager::static_changes(const SandboxRecord& record,
                                                 const std::string& text) const {
  auto current = registry_.revision(record.name, record.revision);
  if (!current) return {};
  const auto was = policy::parse_policy_string(*current, "running revision");
  const auto next = policy::parse_policy_string(text, "new policy");
  if (!was.ok() || !next.ok()) return {"the running revision or the new policy does not parse"};
  return policy::static_differences(*was.policy, *next.policy);
}

Status Manager::record_revision(SandboxRecord& record, const std::string& text,
                                const std::string& origin, sys::Durability durability) {
  auto revision =
      registry_.add_revision(record.name, text, origin, durability_of(record, durability));
  if (!revision) return revision.error().wrap("applied, but not recorded");
  record.revision = *revision;
  record.source = origin;
  return registry_.save(record, durability);
}

Result<uint64_t> Manager::set_policy(const std::string& name, const std::string& text,
                                     const std::string& source) {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  if (auto st = refuse_if_busy(name); !st) return st.error();
  const std::string shown = source.empty() ? "<policy>" : source;
  if (auto valid = validate_policy(text, shown); !valid) return valid.error();
  SandboxRecord& record = it->second;
  // A static section the file leaves out means the one in force, not the built-in default.
  auto current = registry_.revision(name, record.revision);
  const std::string complete = current ? policy::with_static_sections_of(text, *current) : text;
  auto parsed = validate_policy(complete, shown);
  if (!parsed) return parsed.error();
  if (auto st = check_limits(**parsed, record.owner_uid); !st) return st.error();
  refresh(record);
  const bool was_pinned = record.pinned;
  record.pinned = true;
  auto revision = apply_revision(record, complete, "set from " + source.substr(0, 256));
  if (!revision) record.pinned = was_pinned;
  return revision;
}

Result<uint64_t> Manager::rollback_policy(const std::string& name, uint64_t to) {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  if (auto st = refuse_if_busy(name); !st) return st.error();
  SandboxRecord& record = it->second;
  if (to == 0) {  // the one before the current
    for (uint64_t n : registry_.revisions(name))
      if (n < record.revision) to = n;
    if (to == 0) return Error::invalid(name + " has no revision before " +
                                       std::to_string(record.revision));
  }
  if (to == record.revision)
    return Error::invalid(name + " is on revision " + std::to_string(to) + " already");
  auto text = registry_.revision(name, to);
  if (!text) return Error::from_errno("no revision " + std::to_string(to) + " of " + name, ENOENT);
  refresh(record);
  const bool was_pinned = record.pinned;
  record.pinned = true;
  auto revision = apply_revision(record, *text, "rollback to " + std::to_string(to));
  if (!revision) record.pinned = was_pinned;
  return revision;
}

Result<std::string> Manager::sandbox_policy(const std::string& name, uint64_t number) const {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  auto text = registry_.revision(name, number == 0 ? it->second.revision : number);
  if (!text) return Error::from_errno("no revision " + std::to_string(number) + " of " + name, ENOENT);
  return text;
}

Result<std::vector<RevisionInfo>> Manager::policy_history(const std::string& name) const {
  if (!sandboxes_.contains(name)) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  return registry_.history(name);
}

Result<UniqueFd> Manager::open_pty(const std::string& name) const {
  auto it = sandboxes_.find(name);
  if (it == sandboxes_.end()) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  if (auto st = refuse_if_busy(name); !st) return st.error();
  if (it->second.phase != Phase::kRunning)
    return Error::invalid("sandbox " + name + " is " + std::string(to_string(it->second.phase)));
  control::Request request;
  request.op = control::Op::kOpenPty;
  const std::string socket = control_socket(name);
  auto fd = send_request(socket, request);
  if (!fd) return fd.error();
  std::vector<UniqueFd> fds;
  auto reply = read_reply(fd->get(), socket, 5000, &fds);
  if (!reply) return reply.error();
  if (!reply->ok) return Error::invalid(reply->error);
  if (fds.size() != 1) return Error::invalid("no terminal came with the reply");
  return std::move(fds.front());
}

Result<UniqueFd> Manager::open_workspace(const std::string& name) const {
  if (!sandboxes_.contains(name)) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  const SandboxRecord& record = sandboxes_.at(name);
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
  if (!sandboxes_.contains(name)) return Error::from_errno("no sandbox " + name.substr(0, 64), ENOENT);
  // The rotated file (older events) first, then the current one (see JsonlFileSink).
  const std::string file = events_file(name);
  std::deque<std::string> kept;
  for (const std::string& path : {file + ".1", file}) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      auto e = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!e.is_object()) continue;  // a torn last line while a supervisor writes
      if (e.value("time", int64_t{0}) < since_unix_ms) continue;
      if (class_uid != 0 && e.value("class_uid", 0U) != class_uid) continue;
      if (denied_only && e.value("disposition", "") != "Blocked") continue;
      kept.push_back(std::move(line));
      if (kept.size() > max) kept.pop_front();
    }
  }
  return std::vector<std::string>(kept.begin(), kept.end());
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
