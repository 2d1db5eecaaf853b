#include "openshelld/bus.hpp"

#include <fcntl.h>
#include <grp.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/bus_ptr.hpp"
#include "core/log.hpp"
#include "core/policy.hpp"
#include "openshelld/features.hpp"
#include "sys/credentials.hpp"

namespace openshell::daemon {
namespace {

constexpr const char* kErrorAccessDenied = "org.openshell.Error.AccessDenied";
constexpr const char* kErrorNotFound = "org.openshell.Error.NotFound";
constexpr const char* kErrorFailed = "org.openshell.Error.Failed";
constexpr const char* kErrorInvalid = "org.openshell.Error.InvalidArgument";
// An exec's or run's command that could not be run: openshellctl exits 127 and 126, as a shell.
constexpr const char* kErrorCommandNotFound = "org.openshell.Error.CommandNotFound";
constexpr const char* kErrorCommandCannotExecute = "org.openshell.Error.CommandCannotExecute";
constexpr size_t kMaxStrings = 256;     // entries of an `as` argument
constexpr size_t kMaxStringBytes = 4096;

struct Caller {
  uid_t uid = static_cast<uid_t>(-1);
  bool root = false;
};

// Whether the user database puts `uid` in group `gid` (primary or supplementary).
bool in_group(uid_t uid, gid_t gid) {
  auto who = sys::credentials_of(uid);
  return who && std::find(who->groups.begin(), who->groups.end(), gid) != who->groups.end();
}

// Who is calling, from the bus's credentials, and whether they may call at all.
int identify(sd_bus_message* m, Caller* caller, sd_bus_error* error) {
  sd_bus_creds* creds = nullptr;
  int rc = sd_bus_query_sender_creds(
      m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID | SD_BUS_CREDS_SUPPLEMENTARY_GIDS, &creds);
  if (rc < 0) return sd_bus_error_set(error, kErrorAccessDenied, "caller credentials unknown");
  const BusCreds held(creds);  // the group list points into them: they live until we return
  uid_t uid = 0;
  gid_t egid = 0;
  const gid_t* groups = nullptr;
  rc = sd_bus_creds_get_euid(creds, &uid);
  const int egid_rc = sd_bus_creds_get_egid(creds, &egid);
  const int ngroups = sd_bus_creds_get_supplementary_gids(creds, &groups);
  if (rc < 0) return sd_bus_error_set(error, kErrorAccessDenied, "caller uid unknown");
  caller->uid = uid;
  caller->root = uid == 0;
  // Root needs no group: no user-database lookup (with nss-systemd, a dozen file probes) then.
  if (caller->root) return 0;
  bool member = false;
  if (const group* g = ::getgrnam("openshell"); g != nullptr) {
    const gid_t wanted = g->gr_gid;
    member = egid_rc >= 0 && egid == wanted;
    for (int i = 0; i < ngroups && !member; ++i) member = groups[i] == wanted;
    // The bus does not always pass groups on; the user database is the authority anyway
    // (it is what dbus-daemon applies its own policy with).
    if (!member) member = in_group(uid, wanted);
  }
  if (!member)
    return sd_bus_error_set(error, kErrorAccessDenied,
                            "only root and members of group openshell may use openshelld");
  return 0;
}

bool may_touch(const Caller& caller, const SandboxRecord& record) {
  return caller.root || record.owner_uid == caller.uid;
}

int fail(sd_bus_error* error, const Error& e) {
  const char* name = kErrorFailed;
  if (e.code == std::errc::no_such_file_or_directory) name = kErrorNotFound;
  if (e.code == std::errc::invalid_argument) name = kErrorInvalid;
  return sd_bus_error_set(error, name, e.message().c_str());
}

// The error reply to a call kept for later, named as fail() names it.
void reply_error(sd_bus_message* call, const Error& e) {
  BusError error;
  (void)fail(error.get(), e);
  (void)sd_bus_reply_method_error(call, error.get());
}

// The callback that answers call `m` later, from the loop: `value(result)` with `signature`,
// or the error.
template <typename T, typename Value>
auto reply_later(sd_bus_message* m, const char* signature, Value value) {
  return [call = keep_call(m), signature, value](Result<T> result) {
    if (result)
      (void)sd_bus_reply_method_return(call.get(), signature, value(*result));
    else
      reply_error(call.get(), result.error());
  };
}

// A new method return for `call`, filled by `fill` and sent; sd-bus return codes.
template <typename Fill>
int reply_with(sd_bus_message* call, Fill fill) {
  sd_bus_message* m = nullptr;
  int rc = sd_bus_message_new_method_return(call, &m);
  if (rc < 0) return rc;
  const BusMessage reply(m);
  if ((rc = fill(m)) < 0) return rc;
  return sd_bus_send(nullptr, m, nullptr);
}

int read_strings(sd_bus_message* m, std::vector<std::string>* out, sd_bus_error* error) {
  int rc = sd_bus_message_enter_container(m, 'a', "s");
  if (rc < 0) return rc;
  const char* s = nullptr;
  while ((rc = sd_bus_message_read(m, "s", &s)) > 0) {
    if (out->size() >= kMaxStrings || std::strlen(s) > kMaxStringBytes)
      return sd_bus_error_set(error, kErrorInvalid, "too many or too long strings");
    out->emplace_back(s);
  }
  if (rc < 0) return rc;
  return sd_bus_message_exit_container(m);
}

// The options dictionary of CreateSandbox, CreateSandboxWithPolicy and RunSandbox: "workdir"
// (s), "workdir_readonly" (b), "env" (as; create only). Anything else is InvalidArgument.
int read_options(sd_bus_message* m, bool env_allowed, SandboxOptions* out, sd_bus_error* error) {
  int rc = sd_bus_message_enter_container(m, 'a', "{sv}");
  if (rc < 0) return rc;
  while ((rc = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
    const char* key = nullptr;
    if ((rc = sd_bus_message_read(m, "s", &key)) < 0) return rc;
    const std::string k = key;
    if (k == "workdir") {
      const char* dir = nullptr;
      if ((rc = sd_bus_message_read(m, "v", "s", &dir)) < 0) return rc;
      if (std::strlen(dir) > kMaxStringBytes)
        return sd_bus_error_set(error, kErrorInvalid, "workdir is too long");
      out->workdir = dir;
    } else if (k == "workdir_readonly") {
      int b = 0;
      if ((rc = sd_bus_message_read(m, "v", "b", &b)) < 0) return rc;
      out->workdir_readonly = b != 0;
    } else if ((k == "env" || k == "providers" || k == "inference") && env_allowed) {
      auto* list = k == "env" ? &out->env : k == "providers" ? &out->providers : &out->routes;
      if ((rc = sd_bus_message_enter_container(m, 'v', "as")) < 0) return rc;
      if ((rc = read_strings(m, list, error)) < 0) return rc;
      if ((rc = sd_bus_message_exit_container(m)) < 0) return rc;
    } else {
      return sd_bus_error_setf(error, kErrorInvalid, "unknown option '%.64s'", key);
    }
    if ((rc = sd_bus_message_exit_container(m)) < 0) return rc;
  }
  if (rc < 0) return rc;
  if (out->workdir_readonly && out->workdir.empty())
    return sd_bus_error_set(error, kErrorInvalid, "workdir_readonly needs a workdir");
  return sd_bus_message_exit_container(m);
}

BusService* service_of(void* userdata) { return static_cast<BusService*>(userdata); }

uint64_t now_monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000U + static_cast<uint64_t>(ts.tv_nsec) / 1000U;
}

// Runs a method body; any exception becomes a D-Bus error instead of unwinding through C.
template <typename F>
int guarded(sd_bus_error* error, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return sd_bus_error_set(error, kErrorFailed, e.what());
  } catch (...) {
    return sd_bus_error_set(error, kErrorFailed, "internal error");
  }
}

// The sandbox named by the first argument, if the caller may touch it; NotFound otherwise
// (to a non-root caller, someone else's sandbox does not exist).
int touchable(sd_bus_message* m, void* userdata, sd_bus_error* error, SandboxRecord* out) {
  Caller caller;
  if (int rc = identify(m, &caller, error); rc < 0) return rc;
  const char* name = nullptr;
  if (int rc = sd_bus_message_read(m, "s", &name); rc < 0) return rc;
  auto r = service_of(userdata)->manager().get(name);
  if (!r || !may_touch(caller, *r))
    return sd_bus_error_setf(error, kErrorNotFound, "no sandbox %.64s", name);
  *out = std::move(*r);
  return 0;
}

int method_status(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    auto& manager = service_of(userdata)->manager();
    uint32_t visible = 0;
    for (const auto& r : manager.list())
      if (may_touch(caller, r)) ++visible;
    return reply_with(m, [&](sd_bus_message* reply) {
      int rc = sd_bus_message_append(reply, "ssu", OPENSHELL_VERSION, manager.driver(), visible);
      if (rc >= 0) rc = sd_bus_message_open_container(reply, 'a', "{ss}");
      for (const auto& [feature, found] : kernel_features())
        if (rc >= 0) rc = sd_bus_message_append(reply, "{ss}", feature.c_str(), found.c_str());
      if (rc >= 0) rc = sd_bus_message_close_container(reply);
      return rc;
    });
  });
}

// CreateSandbox (a named policy) and CreateSandboxWithPolicy (the caller's own text).
int create_with(sd_bus_message* m, void* userdata, sd_bus_error* error, bool own_text) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    const char* name = nullptr;
    const char* policy = nullptr;
    const char* source = "";
    if (int rc = sd_bus_message_read(m, "ss", &name, &policy); rc < 0) return rc;
    if (own_text)
      if (int rc = sd_bus_message_read(m, "s", &source); rc < 0) return rc;
    std::vector<std::string> command;
    if (int rc = read_strings(m, &command, error); rc < 0) return rc;
    SandboxOptions options;
    if (int rc = read_options(m, /*env_allowed=*/true, &options, error); rc < 0) return rc;
    auto& manager = service_of(userdata)->manager();
    // Answered once the supervisor is up, from the loop, which serves others meanwhile.
    auto done = reply_later<SandboxRecord>(
        m, "s", [](const SandboxRecord& created) { return created.name.c_str(); });
    if (own_text)
      manager.create_with_text(name, policy, source, std::move(command), caller.uid,
                               std::move(options), done);
    else
      manager.create(name, policy, std::move(command), caller.uid, std::move(options), done);
    return 1;
  });
}

int method_create(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return create_with(m, userdata, error, false);
}

int method_create_with_policy(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return create_with(m, userdata, error, true);
}

// -1: no exit status (running, or the command never ran).
int exit_status_of(const SandboxRecord& r) { return r.exit_code.value_or(-1); }

// The named policy a sandbox follows: none once its own was set (policy set, rollback), when
// its revision's source says where that came from.
const char* followed_policy(const SandboxRecord& r) { return r.pinned ? "" : r.policy.c_str(); }

int append_record(sd_bus_message* reply, const SandboxRecord& r) {
  return sd_bus_message_append(reply, "(ssstuxiss)", r.name.c_str(),
                               std::string(to_string(r.phase)).c_str(), followed_policy(r),
                               r.revision, r.owner_uid, r.created_unix_ms, exit_status_of(r),
                               r.reason.c_str(), r.source.c_str());
}

int method_list(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    return reply_with(m, [&](sd_bus_message* reply) {
      int rc = sd_bus_message_open_container(reply, 'a', "(ssstuxiss)");
      for (const auto& r : service_of(userdata)->manager().list())
        if (rc >= 0 && may_touch(caller, r)) rc = append_record(reply, r);
      if (rc >= 0) rc = sd_bus_message_close_container(reply);
      return rc;
    });
  });
}

int method_get(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    return sd_bus_reply_method_return(m, "ssstuxsiss", r.name.c_str(),
                                      std::string(to_string(r.phase)).c_str(), followed_policy(r),
                                      r.revision, r.owner_uid, r.created_unix_ms,
                                      r.reason.c_str(), exit_status_of(r), r.workdir.c_str(),
                                      r.source.c_str());
  });
}

// DeleteSandbox answers once the supervisor has stopped, which its agent may put
// off for up to 15 s: the call is kept, and answered from the loop, which serves others meanwhile.
template <typename Action>
int on_sandbox_later(sd_bus_message* m, void* userdata, sd_bus_error* error, Action action) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    action(service_of(userdata)->manager(), r.name, [call = keep_call(m)](const Status& st) {
      if (st)
        (void)sd_bus_reply_method_return(call.get(), "");
      else
        reply_error(call.get(), st.error());
    });
    return 1;
  });
}

int method_delete(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return on_sandbox_later(m, userdata, error, [](Manager& mgr, const std::string& n, auto done) {
    mgr.remove(n, std::move(done));
  });
}

// StartSandbox and StopSandbox reply whether they changed anything: starting a running sandbox
// or stopping a stopped one is no error, only nothing to do (as `systemctl start` of a running
// unit).
int method_start(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    // Answered once the supervisor has launched, from the loop.
    service_of(userdata)->manager().start(
        r.name, reply_later<bool>(m, "b", [](bool changed) { return changed ? 1 : 0; }));
    return 1;
  });
}

int method_stop(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    if (r.phase == Phase::kStopped || r.phase == Phase::kFailed)
      return sd_bus_reply_method_return(m, "b", 0);
    service_of(userdata)->manager().stop(r.name, [call = keep_call(m)](const Status& st) {
      if (st)
        (void)sd_bus_reply_method_return(call.get(), "b", 1);
      else
        reply_error(call.get(), st.error());
    });
    return 1;
  });
}

// `count` descriptors from the message, as our own copies (the message owns its own).
int take_fds(sd_bus_message* m, size_t count, sd_bus_error* error, std::vector<UniqueFd>* out) {
  for (size_t i = 0; i < count; ++i) {
    int fd = -1;
    if (int rc = sd_bus_message_read(m, "h", &fd); rc < 0) return rc;
    UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
    if (!copy) return sd_bus_error_set_errno(error, errno);
    out->push_back(std::move(copy));
  }
  return 0;
}

// A call that ends with a command (Exec, ExecTty, RunSandbox), from its start to its reply: the
// call (and the caller's descriptors it carries) and, once the manager took the command, a
// watch on the caller. A caller that leaves the bus first (killed, its connection dropped)
// leaves nobody to read the command's output or status: the manager abandons the command.
struct CommandCall {
  KeptCall call;
  sd_bus_track* caller = nullptr;
  Manager* manager = nullptr;
  uint64_t ticket = 0;
  BusService* service = nullptr;  // where it is listed for SignalCommand, until it ends
  std::pair<std::string, uint64_t> key;
  explicit CommandCall(sd_bus_message* m) : call(keep_call(m)) {}
  CommandCall(const CommandCall&) = delete;
  CommandCall& operator=(const CommandCall&) = delete;
  ~CommandCall() {
    unlist();
    sd_bus_track_unref(caller);
  }
  void unlist() {
    if (service != nullptr) service->commands().erase(key);
    service = nullptr;
  }
};

// The reply: the command's exit code (128+N for signal N), or why not. The call is let go when
// the callback is, called or not: a call refused before it started must not keep the caller's
// stdout open.
std::function<void(const ExecOutcome&)> reply_when_done(const std::shared_ptr<CommandCall>& c) {
  return [c](const ExecOutcome& outcome) {
    c->caller = sd_bus_track_unref(c->caller);  // it ended: the caller's leaving means nothing
    c->unlist();
    if (outcome.ok) {
      const int code = outcome.signal != 0 ? 128 + outcome.signal : outcome.exit_code;
      (void)sd_bus_reply_method_return(c->call.get(), "i", code);
    } else {
      const char* name = outcome.exit_code == 127   ? kErrorCommandNotFound
                         : outcome.exit_code == 126 ? kErrorCommandCannotExecute
                                                    : kErrorFailed;
      (void)sd_bus_reply_method_errorf(c->call.get(), name, "%s", outcome.error.c_str());
    }
  };
}

int on_caller_gone(sd_bus_track* /*track*/, void* userdata) {
  auto* c = static_cast<CommandCall*>(userdata);
  // abandon() may end the call, and with it *c: nothing of it is touched after.
  c->manager->abandon(c->ticket);
  return 0;
}

void watch_caller(const std::shared_ptr<CommandCall>& c, BusService& service, uint64_t ticket) {
  Manager& manager = service.manager();
  c->manager = &manager;
  c->ticket = ticket;
  uint64_t cookie = 0;
  if (const char* sender = sd_bus_message_get_sender(c->call.get());
      sender != nullptr && sd_bus_message_get_cookie(c->call.get(), &cookie) >= 0) {
    c->key = {sender, cookie};
    c->service = &service;
    service.commands()[c->key] = ticket;
  }
  sd_bus_track* track = nullptr;
  if (sd_bus_track_new(sd_bus_message_get_bus(c->call.get()), &track, on_caller_gone, c.get()) < 0)
    return;
  c->caller = track;
  const int rc = sd_bus_track_add_sender(track, c->call.get());
  if (rc == -ENXIO) {
    manager.abandon(ticket);  // gone already
  } else if (rc < 0) {
    log::warn("bus", std::string("cannot watch a caller: ") + std::strerror(-rc) +
                         "; its command runs to its end if the caller leaves");
    c->caller = sd_bus_track_unref(c->caller);
  }
}

// Exec and ExecTty: the command's stdio is three descriptors, or one pty slave.
int exec_with(sd_bus_message* m, void* userdata, sd_bus_error* error, bool tty) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    std::vector<std::string> argv, env;
    if (int rc = read_strings(m, &argv, error); rc < 0) return rc;
    if (int rc = read_strings(m, &env, error); rc < 0) return rc;
    const char* cwd = nullptr;
    if (int rc = sd_bus_message_read(m, "s", &cwd); rc < 0) return rc;
    std::vector<UniqueFd> stdio;
    if (int rc = take_fds(m, tty ? 1 : 3, error, &stdio); rc < 0) return rc;
    if (tty && ::isatty(stdio[0].get()) == 0)
      return sd_bus_error_set(error, kErrorInvalid, "ExecTty needs a terminal (a pty's slave)");
    auto call = std::make_shared<CommandCall>(m);
    Manager& manager = service_of(userdata)->manager();
    auto ticket = manager.exec(r.name, std::move(argv), std::move(env), cwd, std::move(stdio),
                               reply_when_done(call));
    if (!ticket) return fail(error, ticket.error());
    watch_caller(call, *service_of(userdata), *ticket);
    return 1;  // the reply comes when the command ends
  });
}

// RunSandbox: one command in a new sandbox, as its main process, with the caller's stdio.
int method_run(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    const char* policy = nullptr;
    const char* text = nullptr;
    const char* source = nullptr;
    if (int rc = sd_bus_message_read(m, "sss", &policy, &text, &source); rc < 0) return rc;
    std::vector<std::string> argv, env;
    if (int rc = read_strings(m, &argv, error); rc < 0) return rc;
    if (int rc = read_strings(m, &env, error); rc < 0) return rc;
    SandboxOptions options;
    if (int rc = read_options(m, /*env_allowed=*/false, &options, error); rc < 0) return rc;
    std::vector<UniqueFd> stdio;
    if (int rc = take_fds(m, 3, error, &stdio); rc < 0) return rc;
    auto call = std::make_shared<CommandCall>(m);
    Manager& manager = service_of(userdata)->manager();
    auto ticket = manager.run(policy, text, source, std::move(argv), std::move(env),
                              std::move(stdio), caller.uid, std::move(options),
                              reply_when_done(call));
    if (!ticket) return fail(error, ticket.error());
    watch_caller(call, *service_of(userdata), *ticket);
    return 1;
  });
}

// SignalCommand: a signal for the command of one of the caller's own running Exec or
// RunSandbox calls, named by that call's serial (openshellctl forwards its ^C, SIGTERM, SIGHUP
// and SIGQUIT, as docker run does).
int method_signal_command(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    uint64_t serial = 0;
    int sig = 0;
    if (int rc = sd_bus_message_read(m, "ti", &serial, &sig); rc < 0) return rc;
    if (sig < 1 || sig > 64) return sd_bus_error_set(error, kErrorInvalid, "no such signal");
    const char* sender = sd_bus_message_get_sender(m);
    auto& commands = service_of(userdata)->commands();
    const auto it = commands.find({sender != nullptr ? sender : "", serial});
    if (it == commands.end())
      return sd_bus_error_set(error, kErrorNotFound, "no command of yours runs for that call");
    if (auto st = service_of(userdata)->manager().signal(it->second, sig); !st)
      return fail(error, st.error());
    return sd_bus_reply_method_return(m, "");
  });
}

int method_exec(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return exec_with(m, userdata, error, false);
}

int method_exec_tty(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return exec_with(m, userdata, error, true);
}

int reply_strings(sd_bus_message* reply, const std::vector<std::string>& v) {
  int rc = sd_bus_message_open_container(reply, 'a', "s");
  for (const auto& s : v)
    if (rc >= 0) rc = sd_bus_message_append(reply, "s", s.c_str());
  if (rc >= 0) rc = sd_bus_message_close_container(reply);
  return rc;
}

int method_reload(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    if (!caller.root)
      return sd_bus_error_set(error, kErrorAccessDenied, "only root may reload policies");
    // systemd learns that a reload runs (systemctl reload waits for READY=1 again).
    (void)sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading policies",
                     static_cast<unsigned long long>(now_monotonic_usec()));
    // Answered once every supervisor has (the loop serves other calls meanwhile).
    service_of(userdata)->manager().reload_policies(
        [call = keep_call(m)](const Manager::ReloadReport& report) {
      (void)sd_notifyf(0, "READY=1\nSTATUS=serving; last reload: %s",
                       report.diagnostics.empty() ? "applied" : "rejected");
      if (!report.diagnostics.empty()) {
        std::string text = "policy reload rejected; the policies in force stay:";
        for (const auto& d : report.diagnostics) text += "\n" + d;
        (void)sd_bus_reply_method_errorf(call.get(), kErrorInvalid, "%s", text.c_str());
        return;
      }
      (void)reply_with(call.get(), [&](sd_bus_message* reply) {
        int rc = reply_strings(reply, report.applied);
        if (rc >= 0) rc = reply_strings(reply, report.needs_recreation);
        if (rc >= 0) rc = reply_strings(reply, report.failed);
        return rc;
      });
    });
    return 1;
  });
}

int method_list_policies(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    const auto names = service_of(userdata)->manager().policy_names();
    return reply_with(m, [&](sd_bus_message* reply) { return reply_strings(reply, names); });
  });
}

int method_show_policy(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    const char* name = nullptr;
    if (int rc = sd_bus_message_read(m, "s", &name); rc < 0) return rc;
    auto text = service_of(userdata)->manager().policy_text(name);
    if (!text) return fail(error, text.error());
    return sd_bus_reply_method_return(m, "s", text->c_str());
  });
}

int method_validate_policy(sd_bus_message* m, void*, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    const char* text = nullptr;
    const char* source = nullptr;
    if (int rc = sd_bus_message_read(m, "ss", &text, &source); rc < 0) return rc;
    auto parsed = policy::parse_policy_string(text, source[0] != '\0' ? source : "<policy>");
    std::vector<std::string> diagnostics;
    for (const auto& d : parsed.diagnostics) diagnostics.push_back(d.to_string());
    return reply_with(m, [&](sd_bus_message* reply) { return reply_strings(reply, diagnostics); });
  });
}

int method_read_events(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    uint32_t max = 0, class_uid = 0;
    int denied = 0;
    int64_t since = 0;
    if (int rc = sd_bus_message_read(m, "uubx", &max, &class_uid, &denied, &since); rc < 0)
      return rc;
    auto lines = service_of(userdata)->manager().events(r.name, std::min<uint32_t>(max == 0 ? 100 : max, 10000), class_uid,
                                denied != 0, since);
    if (!lines) return fail(error, lines.error());
    return reply_with(m, [&](sd_bus_message* reply) { return reply_strings(reply, *lines); });
  });
}

int method_set_policy(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    const std::string& name = r.name;
    const char* text = nullptr;
    const char* source = nullptr;
    if (int rc = sd_bus_message_read(m, "ss", &text, &source); rc < 0) return rc;
    service_of(userdata)->manager().set_policy(
        name, text, source, reply_later<uint64_t>(m, "t", [](uint64_t n) { return n; }));
    return 1;
  });
}

int method_get_policy(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    const std::string& name = r.name;
    uint64_t number = 0;
    if (int rc = sd_bus_message_read(m, "t", &number); rc < 0) return rc;
    auto& manager = service_of(userdata)->manager();
    if (number == 0) number = r.revision;
    auto text = manager.sandbox_policy(name, number);
    if (!text) return fail(error, text.error());
    return sd_bus_reply_method_return(m, "ts", number, text->c_str());
  });
}

int method_policy_history(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    const std::string& name = r.name;
    auto& manager = service_of(userdata)->manager();
    auto history = manager.policy_history(name);
    if (!history) return fail(error, history.error());
    return reply_with(m, [&](sd_bus_message* reply) {
      int rc = sd_bus_message_append(reply, "t", r.revision);
      if (rc >= 0) rc = sd_bus_message_open_container(reply, 'a', "(txs)");
      for (const auto& h : *history) {
        if (rc < 0) break;
        rc = sd_bus_message_append(reply, "(txs)", h.number, h.time_unix_ms, h.origin.c_str());
      }
      if (rc >= 0) rc = sd_bus_message_close_container(reply);
      return rc;
    });
  });
}

int method_rollback_policy(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    const std::string& name = r.name;
    uint64_t to = 0;
    if (int rc = sd_bus_message_read(m, "t", &to); rc < 0) return rc;
    service_of(userdata)->manager().rollback_policy(
        name, to, reply_later<uint64_t>(m, "t", [](uint64_t n) { return n; }));
    return 1;
  });
}

int method_open_pty(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    // sd-bus sends a copy of the descriptor.
    service_of(userdata)->manager().open_pty(
        r.name, reply_later<UniqueFd>(m, "h", [](const UniqueFd& master) { return master.get(); }));
    return 1;
  });
}

int method_open_workspace(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    SandboxRecord r;
    if (int rc = touchable(m, userdata, error, &r); rc < 0) return rc;
    auto fd = service_of(userdata)->manager().open_workspace(r.name);
    if (!fd) return fail(error, fd.error());
    return sd_bus_reply_method_return(m, "h", fd->get());  // sd-bus sends a copy
  });
}

// WatchSandboxes: SandboxChanged and PolicyGenerationChanged for the caller's own sandboxes
// (every sandbox for root), sent to it alone until it leaves the bus.
// --- providers and inference routes (issue 16): root changes them; anyone may look ---

int only_root(sd_bus_message* m, sd_bus_error* error, const char* what) {
  Caller caller;
  if (int rc = identify(m, &caller, error); rc < 0) return rc;
  if (!caller.root) return sd_bus_error_setf(error, kErrorAccessDenied, "only root may %s", what);
  return 0;
}

int reply_json(sd_bus_message* m, sd_bus_error* error, const Result<nlohmann::json>& j) {
  if (!j) return fail(error, j.error());
  return sd_bus_reply_method_return(m, "s", j->dump().c_str());
}

// SetProvider(s name, s type, a{ss} credentials, b create): the values travel only here.
int method_set_provider(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    if (int rc = only_root(m, error, "change providers"); rc < 0) return rc;
    const char* name = nullptr;
    const char* type = nullptr;
    if (int rc = sd_bus_message_read(m, "ss", &name, &type); rc < 0) return rc;
    providers::Provider p;
    p.name = name;
    int rc = sd_bus_message_enter_container(m, 'a', "{ss}");
    if (rc < 0) return rc;
    const char* key = nullptr;
    const char* value = nullptr;
    while ((rc = sd_bus_message_read(m, "{ss}", &key, &value)) > 0) {
      if (p.credentials.size() >= providers::kMaxCredentials)
        return sd_bus_error_set(error, kErrorInvalid, "too many credentials");
      p.credentials[key] = value;
    }
    if (rc < 0) return rc;
    if ((rc = sd_bus_message_exit_container(m)) < 0) return rc;
    int create = 0;
    if ((rc = sd_bus_message_read(m, "b", &create)) < 0) return rc;
    auto& manager = service_of(userdata)->manager();
    const bool keep_type = type[0] == '\0';
    if (keep_type && create != 0)
      return sd_bus_error_set(error, kErrorInvalid, "a new provider needs a type");
    if (!keep_type) {
      auto t = providers::parse_type(type);
      if (!t)
        return sd_bus_error_setf(error, kErrorInvalid,
                                 "unknown provider type '%.32s' (generic, github, openai, "
                                 "anthropic, nvidia)",
                                 type);
      p.type = *t;
    }
    if (auto st = manager.set_provider(p, create != 0, keep_type); !st)
      return fail(error, st.error());
    return sd_bus_reply_method_return(m, "");
  });
}

int method_delete_provider(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    if (int rc = only_root(m, error, "change providers"); rc < 0) return rc;
    const char* name = nullptr;
    if (int rc = sd_bus_message_read(m, "s", &name); rc < 0) return rc;
    if (auto st = service_of(userdata)->manager().delete_provider(name); !st)
      return fail(error, st.error());
    return sd_bus_reply_method_return(m, "");
  });
}

int method_get_provider(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    const char* name = nullptr;
    if (int rc = sd_bus_message_read(m, "s", &name); rc < 0) return rc;
    return reply_json(m, error, service_of(userdata)->manager().provider_info(name, caller.uid));
  });
}

int method_list_providers(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    return reply_json(m, error, service_of(userdata)->manager().provider_list(caller.uid));
  });
}

// SetRoute(s route): the route as JSON (core/inference's to_json).
int method_set_route(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    if (int rc = only_root(m, error, "change inference routes"); rc < 0) return rc;
    const char* text = nullptr;
    if (int rc = sd_bus_message_read(m, "s", &text); rc < 0) return rc;
    if (std::strlen(text) > 64 * 1024)
      return sd_bus_error_set(error, kErrorInvalid, "route too large");
    auto route = inference::route_from_json(
        nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false));
    if (!route) return fail(error, route.error());
    if (auto st = service_of(userdata)->manager().set_route(*route); !st)
      return fail(error, st.error());
    return sd_bus_reply_method_return(m, "");
  });
}

int method_delete_route(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    if (int rc = only_root(m, error, "change inference routes"); rc < 0) return rc;
    const char* name = nullptr;
    if (int rc = sd_bus_message_read(m, "s", &name); rc < 0) return rc;
    if (auto st = service_of(userdata)->manager().delete_route(name); !st)
      return fail(error, st.error());
    return sd_bus_reply_method_return(m, "");
  });
}

int method_get_route(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    const char* name = nullptr;
    if (int rc = sd_bus_message_read(m, "s", &name); rc < 0) return rc;
    return reply_json(m, error, service_of(userdata)->manager().route_info(name));
  });
}

int method_list_routes(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    return reply_json(m, error, service_of(userdata)->manager().route_list());
  });
}

int method_watch(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  return guarded(error, [&] {
    Caller caller;
    if (int rc = identify(m, &caller, error); rc < 0) return rc;
    if (auto st = service_of(userdata)->watch(m, caller.uid); !st) return fail(error, st.error());
    return sd_bus_reply_method_return(m, "");
  });
}

const sd_bus_vtable kVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("Status", "", , "ssua{ss}",
                             SD_BUS_PARAM(version) SD_BUS_PARAM(driver) SD_BUS_PARAM(sandboxes)
                                 SD_BUS_PARAM(kernel),
                             method_status, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("CreateSandbox", "ssasa{sv}",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(policy) SD_BUS_PARAM(command)
                                 SD_BUS_PARAM(options),
                             "s",
                             SD_BUS_PARAM(name), method_create, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("CreateSandboxWithPolicy", "sssasa{sv}",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(text) SD_BUS_PARAM(source)
                                 SD_BUS_PARAM(command) SD_BUS_PARAM(options),
                             "s", SD_BUS_PARAM(name), method_create_with_policy,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ListSandboxes", "", , "a(ssstuxiss)", SD_BUS_PARAM(sandboxes),
                             method_list, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("GetSandbox", "s", SD_BUS_PARAM(name), "ssstuxsiss",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(phase) SD_BUS_PARAM(policy)
                                 SD_BUS_PARAM(revision) SD_BUS_PARAM(owner)
                                     SD_BUS_PARAM(created_unix_ms) SD_BUS_PARAM(reason)
                                         SD_BUS_PARAM(exit_status) SD_BUS_PARAM(workdir)
                                             SD_BUS_PARAM(source),
                             method_get, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("DeleteSandbox", "s", SD_BUS_PARAM(name), "", , method_delete,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("StartSandbox", "s", SD_BUS_PARAM(name), "b", SD_BUS_PARAM(changed),
                             method_start, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("StopSandbox", "s", SD_BUS_PARAM(name), "b", SD_BUS_PARAM(changed),
                             method_stop, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("Exec", "sasasshhh",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(argv) SD_BUS_PARAM(env)
                                 SD_BUS_PARAM(cwd) SD_BUS_PARAM(stdin) SD_BUS_PARAM(stdout)
                                     SD_BUS_PARAM(stderr),
                             "i", SD_BUS_PARAM(exit_code), method_exec,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ExecTty", "sasassh",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(argv) SD_BUS_PARAM(env)
                                 SD_BUS_PARAM(cwd) SD_BUS_PARAM(tty),
                             "i", SD_BUS_PARAM(exit_code), method_exec_tty,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("RunSandbox", "sssasasa{sv}hhh",
                             SD_BUS_PARAM(policy) SD_BUS_PARAM(text) SD_BUS_PARAM(source)
                                 SD_BUS_PARAM(argv) SD_BUS_PARAM(env) SD_BUS_PARAM(options)
                                     SD_BUS_PARAM(stdin) SD_BUS_PARAM(stdout)
                                         SD_BUS_PARAM(stderr),
                             "i", SD_BUS_PARAM(exit_code), method_run,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("SignalCommand", "ti", SD_BUS_PARAM(serial) SD_BUS_PARAM(signal), "",
                             , method_signal_command, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ReloadPolicies", "", , "asasas",
                             SD_BUS_PARAM(applied) SD_BUS_PARAM(needs_recreation)
                                 SD_BUS_PARAM(failed),
                             method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ListPolicies", "", , "as", SD_BUS_PARAM(names),
                             method_list_policies, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ShowPolicy", "s", SD_BUS_PARAM(name), "s", SD_BUS_PARAM(text),
                             method_show_policy, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ValidatePolicy", "ss", SD_BUS_PARAM(text) SD_BUS_PARAM(source),
                             "as", SD_BUS_PARAM(diagnostics), method_validate_policy,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ReadEvents", "suubx",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(max) SD_BUS_PARAM(class_uid)
                                 SD_BUS_PARAM(denied_only) SD_BUS_PARAM(since_unix_ms),
                             "as", SD_BUS_PARAM(events), method_read_events,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("SetPolicy", "sss",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(text) SD_BUS_PARAM(source), "t",
                             SD_BUS_PARAM(revision), method_set_policy,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("GetPolicy", "st", SD_BUS_PARAM(name) SD_BUS_PARAM(revision), "ts",
                             SD_BUS_PARAM(revision) SD_BUS_PARAM(text), method_get_policy,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("PolicyHistory", "s", SD_BUS_PARAM(name), "ta(txs)",
                             SD_BUS_PARAM(current) SD_BUS_PARAM(revisions),
                             method_policy_history, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("RollbackPolicy", "st", SD_BUS_PARAM(name) SD_BUS_PARAM(revision),
                             "t", SD_BUS_PARAM(revision), method_rollback_policy,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("OpenPty", "s", SD_BUS_PARAM(name), "h", SD_BUS_PARAM(master),
                             method_open_pty, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("OpenWorkspace", "s", SD_BUS_PARAM(name), "h",
                             SD_BUS_PARAM(workspace), method_open_workspace,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("SetProvider", "ssa{ss}b",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(type) SD_BUS_PARAM(credentials)
                                 SD_BUS_PARAM(create),
                             "", , method_set_provider, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("DeleteProvider", "s", SD_BUS_PARAM(name), "", ,
                             method_delete_provider, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("GetProvider", "s", SD_BUS_PARAM(name), "s", SD_BUS_PARAM(json),
                             method_get_provider, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ListProviders", "", , "s", SD_BUS_PARAM(json),
                             method_list_providers, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("SetRoute", "s", SD_BUS_PARAM(route), "", , method_set_route,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("DeleteRoute", "s", SD_BUS_PARAM(name), "", , method_delete_route,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("GetRoute", "s", SD_BUS_PARAM(name), "s", SD_BUS_PARAM(json),
                             method_get_route, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ListRoutes", "", , "s", SD_BUS_PARAM(json), method_list_routes,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("WatchSandboxes", "", "", method_watch, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL_WITH_NAMES("SandboxChanged", "sss",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(phase) SD_BUS_PARAM(reason), 0),
    SD_BUS_SIGNAL_WITH_NAMES("PolicyGenerationChanged", "st",
                             SD_BUS_PARAM(name) SD_BUS_PARAM(revision), 0),
    SD_BUS_VTABLE_END};

}  // namespace

Result<std::unique_ptr<BusService>> BusService::start(sd_event* event, const std::string& address,
                                                      Manager& manager) {
  sd_bus* bus = nullptr;
  int rc = 0;
  if (address.empty()) {
    rc = sd_bus_open_system(&bus);
  } else {
    rc = sd_bus_new(&bus);
    if (rc >= 0) rc = sd_bus_set_address(bus, address.c_str());
    if (rc >= 0) rc = sd_bus_set_bus_client(bus, 1);
    if (rc >= 0) rc = sd_bus_negotiate_fds(bus, 1);
    if (rc >= 0) rc = sd_bus_negotiate_creds(bus, 1, SD_BUS_CREDS_EUID);
    if (rc >= 0) rc = sd_bus_start(bus);
  }
  if (rc < 0) {
    sd_bus_unref(bus);
    return Error::from_errno("connecting to the bus", -rc);
  }
  std::unique_ptr<BusService> service(new BusService(bus, manager));
  if ((rc = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL)) < 0 ||
      (rc = sd_bus_add_object_vtable(bus, nullptr, kObjectPath, kInterface, kVtable,
                                     service.get())) < 0)
    return Error::from_errno(std::string("registering ") + kBusName, -rc);
  BusService* raw = service.get();
  manager.set_listener(Manager::Listener{
      .changed =
          [raw](const SandboxRecord& r) {
            const std::string phase(to_string(r.phase));
            raw->signal_watchers(r, "SandboxChanged", [&](sd_bus_message* m) {
              return sd_bus_message_append(m, "sss", r.name.c_str(), phase.c_str(),
                                           r.reason.c_str());
            });
          },
      .removed =
          [raw](const SandboxRecord& r) {
            raw->signal_watchers(r, "SandboxChanged", [&](sd_bus_message* m) {
              return sd_bus_message_append(m, "sss", r.name.c_str(), "removed", "");
            });
          },
      .revised =
          [raw](const SandboxRecord& r) {
            raw->signal_watchers(r, "PolicyGenerationChanged", [&](sd_bus_message* m) {
              return sd_bus_message_append(m, "st", r.name.c_str(), r.revision);
            });
          },
  });
  if ((rc = sd_bus_request_name(bus, kBusName, 0)) < 0) {
    if (rc == -EEXIST)
      return Error::from_errno(std::string("another openshelld owns ") + kBusName +
                                   " on this bus; this one stops and leaves its sandboxes alone",
                               EEXIST);
    return Error::from_errno(std::string("claiming ") + kBusName, -rc);
  }
  return service;
}

struct BusService::Watcher {
  BusService* service = nullptr;
  std::string unique_name;
  uid_t uid = 0;
  sd_bus_track* track = nullptr;
  ~Watcher() { sd_bus_track_unref(track); }
};

void BusService::WatcherRelease::operator()(Watcher* w) const { delete w; }

Status BusService::watch(sd_bus_message* call, uid_t uid) {
  const char* sender = sd_bus_message_get_sender(call);
  if (sender == nullptr) return Error::invalid("no sender to send signals to");
  if (watchers_.contains(sender)) return {};
  if (watchers_.size() >= kMaxWatchers)
    return Error::from_errno("at most " + std::to_string(kMaxWatchers) + " watchers", EAGAIN);
  std::unique_ptr<Watcher, WatcherRelease> watcher(new Watcher);
  watcher->service = this;
  watcher->unique_name = sender;
  watcher->uid = uid;
  auto gone = [](sd_bus_track* track, void* userdata) -> int {
    auto* w = static_cast<Watcher*>(userdata);
    (void)track;
    w->service->forget_watcher(w->unique_name);  // destroys *w
    return 0;
  };
  if (int rc = sd_bus_track_new(bus_, &watcher->track, gone, watcher.get()); rc < 0)
    return Error::from_errno("watching the caller", -rc);
  if (int rc = sd_bus_track_add_sender(watcher->track, call); rc < 0)
    return Error::from_errno("watching the caller", -rc);
  watchers_[sender] = std::move(watcher);
  return {};
}

void BusService::forget_watcher(const std::string& unique_name) {
  // From its own track's callback, as on_caller_gone's: sd-bus holds the track meanwhile.
  watchers_.erase(unique_name);
}

void BusService::signal_watchers(const SandboxRecord& record, const char* member,
                                 const std::function<int(sd_bus_message*)>& append) {
  for (const auto& [name, watcher] : watchers_) {
    if (watcher->uid != 0 && watcher->uid != record.owner_uid) continue;
    sd_bus_message* m = nullptr;
    if (sd_bus_message_new_signal(bus_, &m, kObjectPath, kInterface, member) < 0) continue;
    const BusMessage signal(m);
    if (sd_bus_message_set_destination(m, name.c_str()) < 0 || append(m) < 0) continue;
    (void)sd_bus_send(bus_, m, nullptr);
  }
}

BusService::~BusService() {
  manager_.set_listener({});
  manager_.drop_commands();  // their calls point back here
  watchers_.clear();
  sd_bus_flush_close_unref(bus_);
}

}  // namespace openshell::daemon
