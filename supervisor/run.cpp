#include <utility>  // before Asio (see proxy/server.cpp)

#include "supervisor/run.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstring>
#include <functional>

#include "core/log.hpp"
#include "supervisor/control_server.hpp"
#include "supervisor/exec_channel.hpp"
#include "supervisor/launch/launcher.hpp"
#include "sys/file_util.hpp"
#include "supervisor/proxy/egress_service.hpp"
#include "sys/cgroup.hpp"
#include "sys/process.hpp"
#include "sys/pty.hpp"
#include "sys/unix_socket.hpp"

namespace openshell::supervisor {
namespace {

// The proxy's connection limit (512) times its descriptors per connection (6), with room.
constexpr uint64_t kOpenFileLimit = 8192;
// A shutdown over the control socket: how long the agent has after SIGTERM.
constexpr std::chrono::seconds kShutdownGrace{10};

// The sandbox's cgroup limits: the policy's, and where it sets none the defaults (RunOptions),
// those only where the host has the controller (a v2 tree without controllers still runs
// sandboxes, and the Enforced event says what is missing). "max" is none.
sys::CgroupLimits limits_for(const policy::Resources& own, const policy::Resources& defaults,
                             const sys::CgroupLayout& layout, std::vector<std::string>& skipped) {
  const policy::Resources effective = policy::with_defaults(own, defaults);
  const auto usable = [&](bool from_policy, const char* controller) {
    if (from_policy || layout.has_controller(controller)) return true;
    skipped.emplace_back(controller);
    return false;
  };
  sys::CgroupLimits limits;
  if (effective.memory_max && *effective.memory_max != policy::kUnlimited &&
      usable(own.memory_max.has_value(), "memory"))
    limits.memory_max = effective.memory_max;
  if (effective.cpu_max && effective.cpu_max->percent != policy::kUnlimitedCpu &&
      usable(own.cpu_max.has_value(), "cpu"))
    limits.cpu_percent = effective.cpu_max->percent;
  if (effective.pids_max && *effective.pids_max != policy::kUnlimited &&
      usable(own.pids_max.has_value(), "pids"))
    limits.pids_max = effective.pids_max;
  return limits;
}

// Forwards the signals a user or service manager sends us to the sandbox's init, and ends the
// io_context when init exits. SIGHUP is ours (policy reload) once on_hangup is set. Installed
// before anything announces the sandbox, so no signal can find the default action.
class SignalForwarder {
 public:
  SignalForwarder(boost::asio::io_context& io, sys::ChildProcess& init)
      : io_(io),
        init_(init),
        signals_(io, SIGTERM, SIGINT, SIGHUP),
        exited_(io, ::dup(init.pidfd())) {
    for (int sig : {SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH}) signals_.add(sig);
    wait();
    exited_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [this](const boost::system::error_code&) { io_.stop(); });
  }
  std::function<void()> on_hangup;

 private:
  void wait() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP && on_hangup) {
        on_hangup();
      } else {
        (void)init_.signal(sig);
      }
      wait();
    });
  }
  boost::asio::io_context& io_;
  sys::ChildProcess& init_;
  boost::asio::signal_set signals_;
  // The descriptor object closes what it holds: it gets its own copy of the pidfd.
  boost::asio::posix::stream_descriptor exited_;
};

}  // namespace

void StatusReporter::launched() {
  if (fd_ >= 0) (void)sys::write_no_sigpipe(fd_, "launched " + std::to_string(::getpid()) + "\n");
}

void StatusReporter::exited(int code) {
  if (fd_ < 0 || exited_) return;
  exited_ = true;
  (void)sys::write_no_sigpipe(fd_, "exit " + std::to_string(code) + "\n");
}

Result<int> run_sandbox(const policy::Policy& policy, const RunOptions& options, EventSink& events,
                        SandboxNetwork& network) {
  events.emit(ocsf::config_change(
      options.name, "Loaded", ocsf::Severity::kInformational, ocsf::StatusId::kSuccess,
      "policy loaded from " + policy.source,
      {{"policy",
        {{"source", policy.source}, {"network_rules", policy.network_policies.size()}}}}));
  // Every way out before the agent runs is one event with the stage that failed.
  auto failed = [&](std::string_view stage, const Error& error, int err = 0) {
    nlohmann::json fields = {{"stage", stage}};
    if (err == 0 && error.code.category() == std::generic_category()) err = error.code.value();
    if (err != 0) fields.update({{"errno", err}, {"error", std::strerror(err)}});
    events.emit(ocsf::config_change(options.name, "Failed", ocsf::Severity::kHigh,
                                    ocsf::StatusId::kFailure, error.message(), fields));
    return error;
  };

  // The control socket first: a daemon that cannot reach the sandbox must not start it.
  sys::ListeningSocket control_listener;
  if (!options.control_socket.empty()) {
    auto listener = sys::listen_seqpacket(options.control_socket, 0600);
    if (!listener) return failed("control", listener.error());
    control_listener = std::move(*listener);
  }

  auto layout = sys::detect_cgroup_layout(options.cgroup_version);
  if (!layout) return failed("cgroup", layout.error());
  std::vector<std::string> controllers_missing;
  const sys::CgroupLimits limits =
      limits_for(policy.resources, options.resource_defaults, *layout, controllers_missing);
  std::string cgroup_parent = options.cgroup_parent;
  if (options.cgroup_delegated) {
    auto own = sys::adopt_delegated_cgroup(*layout);
    if (!own) return failed("cgroup", own.error());
    cgroup_parent = std::move(*own);
  }
  auto cgroup = sys::Cgroup::create(*layout, cgroup_parent, options.name, limits);
  if (!cgroup) {
    if (cgroup.error().code == std::errc::file_exists)
      return failed("cgroup", Error{cgroup.error().code,
                                    "a sandbox named '" + options.name + "' already exists"});
    return failed("cgroup", cgroup.error().wrap("creating the sandbox's cgroup"));
  }
  auto reaper = CgroupReaper::spawn(*cgroup);
  if (!reaper) {
    (void)cgroup->remove();
    return failed("reaper", reaper.error());
  }
  auto cleanup = [&] {
    if (auto st = cgroup->remove(); !st) log::warn("supervisor", st.error().message());
    reaper->finish();
  };

  auto plan = build_launch_plan(policy, options, events);
  if (!plan) {
    cleanup();
    return failed("plan", plan.error());
  }

  StageRecord failure;
  auto launched = launch_sandbox(*plan, *cgroup, network, &failure);
  if (!launched) {
    cleanup();
    const std::string_view stage =
        failure.stage == Stage::kNone ? std::string_view("launch") : stage_name(failure.stage);
    failed(stage, launched.error(), failure.err);
    if (failure.stage == Stage::kExec) {
      // As a shell would: the command is the problem, not the sandbox.
      log::error("supervisor", launched.error().message());
      return failure.err == ENOENT ? kExitNotFound : kExitCannotExecute;
    }
    return launched.error();
  }
  boost::asio::io_context io;
  SignalForwarder forwarder(io, launched->init);

  // What is actually enforced, so nobody has to assume (a silently missing Landlock was a real
  // incident elsewhere).
  nlohmann::json enforced = {
      {"landlock_abi", plan->landlock.abi},
      {"landlock_rules", plan->landlock.rules.size()},
      {"seccomp", "baseline"},
      {"cgroup_version", layout->version == sys::CgroupVersion::kV2 ? "v2" : "v1"},
      {"cgroup", cgroup->paths().empty() ? "" : cgroup->paths().front()},
  };
  if (limits.memory_max) enforced["memory_max"] = *limits.memory_max;
  if (limits.pids_max) enforced["pids_max"] = *limits.pids_max;
  if (limits.cpu_percent) enforced["cpu_max_percent"] = *limits.cpu_percent;
  if (!controllers_missing.empty()) enforced["default_limits_without_controller"] = controllers_missing;
  enforced["tmp_size"] = plan->tmp_size;
  enforced["shm_size"] = plan->shm_size;
  events.emit(ocsf::config_change(options.name, "Enforced", ocsf::Severity::kInformational,
                                  ocsf::StatusId::kSuccess, "sandbox isolation in force",
                                  {{"enforcement", enforced}}));

  ocsf::ProcessInfo agent;
  agent.pid = launched->agent_pid;
  agent.sandbox_pid = 2;  // init is 1 and forks nothing else first
  agent.exe = plan->argv_storage[0];
  agent.uid = plan->inside_uid;
  events.emit(ocsf::process_launch(options.name, agent));
  if (options.status != nullptr) options.status->launched();

  // Every proxied connection holds two sockets and, while it tunnels, two pipe ends each way;
  // the default soft limit of 1024 would run out before the connection limit does. Raised only
  // now, so the agent keeps the limits it was started with.
  if (auto raised = sys::raise_open_file_limit(kOpenFileLimit); !raised)
    log::warn("supervisor", raised.error().message());
  else if (*raised < kOpenFileLimit)
    log::warn("supervisor", "open-file limit is " + std::to_string(*raised) +
                                "; the proxy may refuse connections before its own limit");

  if (launched->connect_listener_error != 0)
    log::warn("supervisor", std::string("no seccomp notification for connect(2) (") +
                                std::strerror(launched->connect_listener_error) +
                                "): the proxy finds its callers by searching /proc");
  // Egress: the proxy and the policy DNS, on the same io_context as the signal handling.
  auto listeners = network.take_listeners();
  proxy::EgressService::Inspection inspection;
  if (options.tls)
    if (auto tls = options.tls(); tls) inspection.tls = *tls;  // its error ended the plan
  if (!options.upstream_proxy.empty())
    if (auto parsed = net::parse_upstream_proxy(options.upstream_proxy); parsed)
      inspection.upstream_proxy = *parsed;  // checked with the arguments
  inspection.services = options.services;
  proxy::EgressService egress(
      io, options.name, proxy::prepare_policy(policy), events, launched->init.pid(),
      cgroup->procs_file(), options.static_hosts,
      {std::move(listeners.explicit_proxy), std::move(listeners.transparent),
       std::move(listeners.dns), std::move(listeners.diag), std::move(launched->connect_listener),
       std::move(listeners.refused_log)},
      network, std::move(inspection));
  // A new policy from SIGHUP (the file again) or the control socket: validate, then swap; a
  // broken one changes nothing. Only network_policies change in a running sandbox; the rest was
  // fixed at creation.
  auto apply = [&](const policy::ParseResult& parsed, const std::string& source) {
    control::Reply reply;
    if (!parsed.ok()) {
      nlohmann::json diagnostics = nlohmann::json::array();
      for (const auto& d : parsed.diagnostics) {
        log::error("supervisor", "policy update rejected: " + d.to_string());
        diagnostics.push_back(d.to_string());
        reply.details.push_back(d.to_string());
      }
      reply.error = "policy rejected; the previous policy stays in force";
      events.emit(ocsf::config_change(options.name, "Rejected", ocsf::Severity::kMedium,
                                      ocsf::StatusId::kFailure, reply.error,
                                      {{"policy", {{"source", source}}}, {"diagnostics", diagnostics}}));
      return reply;
    }
    policy::Policy next = policy;
    next.network_policies = parsed.policy->network_policies;
    egress.set_policy(proxy::prepare_policy(next));
    log::info("supervisor", "network_policies updated from " + source);
    // Only [network_policies] changes in a running sandbox; anything else waits for a restart,
    // and is named (the same rule openshelld applies before it pushes).
    const auto waiting = policy::static_differences(policy, *parsed.policy);
    for (const auto& w : waiting) log::warn("supervisor", "not applied until a restart: " + w);
    events.emit(ocsf::config_change(
        options.name, "Reloaded", ocsf::Severity::kInformational, ocsf::StatusId::kSuccess,
        "network_policies reloaded from " + source,
        {{"policy", {{"source", source},
                     {"network_rules", next.network_policies.size()},
                     {"static_changes_not_applied", waiting}}}}));
    reply.ok = true;
    reply.data = {{"network_rules", next.network_policies.size()}};
    return reply;
  };
  if (!options.policy_file.empty())
    forwarder.on_hangup = [&] {
      (void)apply(policy::parse_policy_file(options.policy_file), options.policy_file);
    };

  ExecChannel exec_channel(io, std::move(launched->exec_channel));
  std::unique_ptr<ControlServer> control_server;
  boost::asio::steady_timer shutdown_grace(io);
  if (control_listener.fd) {
    const auto started = std::chrono::system_clock::now();
    ControlHandlers handlers;
    handlers.status = [&, started] {
      return nlohmann::json{
          {"name", options.name},
          {"supervisor_pid", ::getpid()},
          {"agent_pid", launched->agent_pid},
          {"started_unix_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                  started.time_since_epoch())
                                  .count()},
          {"network_rules", egress.policy()->network_policies.size()}};
    };
    handlers.update_policy = [&](const std::string& text) {
      return apply(policy::parse_policy_string(text, "control socket"), "control socket");
    };
    // The daemon's providers and routes, whole: swapped in for the next request. Their
    // placeholders are in the agent's environment from its start; a key added since resolves
    // where the agent names it. Nothing of a value is logged.
    handlers.update_services = [&](const nlohmann::json& j) {
      control::Reply reply;
      auto parsed = services::from_json(j);
      if (!parsed) {
        reply.error = parsed.error().wrap("providers and routes rejected").message();
        return reply;
      }
      const size_t providers = parsed->attached.size() + parsed->routing.size();
      const size_t routes = parsed->routes.size();
      egress.set_services(std::make_shared<const services::Services>(std::move(*parsed)));
      events.emit(ocsf::config_change(
          options.name, "Reloaded", ocsf::Severity::kInformational, ocsf::StatusId::kSuccess,
          "providers and inference routes updated",
          {{"services", {{"providers", providers}, {"routes", routes}}}}));
      reply.ok = true;
      reply.data = {{"providers", providers}, {"routes", routes}};
      return reply;
    };
    // As a service manager stops things: SIGTERM (init passes it to the agent), then SIGKILL.
    handlers.signal_main = [&](int sig) { (void)launched->init.signal(sig); };
    handlers.shutdown = [&] {
      (void)launched->init.signal(SIGTERM);
      shutdown_grace.expires_after(kShutdownGrace);
      shutdown_grace.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) (void)launched->init.signal(SIGKILL);
      });
    };
    // Terminal sessions get a pty of the sandbox's own devpts, reached through init's root, and
    // owned by the agent's identity.
    handlers.open_pty = [&]() -> Result<UniqueFd> {
      UniqueFd root(::open(("/proc/" + std::to_string(launched->init.pid()) + "/root").c_str(),
                           O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (!root) return Error::from_errno("reaching the sandbox's root");
      return sys::open_pty_master_beneath(root.get(), plan->outside_uid, plan->outside_gid);
    };
    handlers.exec = [&](const control::ExecRequest& request, std::vector<UniqueFd> stdio,
                        ReplySink reply) -> std::function<void(int)> {
      std::vector<int> fds;
      for (const auto& fd : stdio) fds.push_back(fd.get());
      // Each session is a Process Activity of its own, beside the agent's (`logs` shows it).
      auto session = std::make_shared<ocsf::ProcessInfo>();
      session->exe = request.argv.front();
      session->uid = plan->inside_uid;
      session->session = request.tty ? "tty" : "exec";
      auto handed = exec_channel.start(
          request, fds,
          {[reply, session, &events, &options](int pid) {
             session->sandbox_pid = pid;
             events.emit(ocsf::process_launch(options.name, *session));
             control::Reply r;
             r.ok = true;
             r.data = {{"event", "started"}, {"pid", pid}};
             reply(r);
           },
           [reply, session, &events, &options](int status) {
             const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
             events.emit(ocsf::process_exit(
                 options.name, *session, sys::exit_code_of(status), sig,
                 sig != 0 ? std::string("killed by signal ") + ::sigabbrev_np(sig) : ""));
             control::Reply r;
             r.ok = true;
             r.data = {{"event", "exited"},
                       {"exit_code", sys::exit_code_of(status)},
                       {"signal", sig}};
             reply(r);
           },
           [reply, command = request.argv.front(), cwd = request.cwd](int err, bool workdir) {
             control::Reply r;
             if (err == ECHILD) {
               r.error = "the sandbox ended";
             } else if (workdir) {
               r.error = "cannot enter the working directory " + cwd + ": " + std::strerror(err);
               r.data = {{"exit_code", kExitCannotExecute}};
             } else {
               // As a shell says it, with its codes: 127 not found, 126 cannot execute.
               r.error = "cannot run " + command + ": " + std::strerror(err);
               r.data = {{"exit_code", err == ENOENT ? kExitNotFound : kExitCannotExecute}};
             }
             reply(r);
           }});
      // Our copies close here; init holds its own now.
      if (!handed) {
        control::Reply r;
        r.error = handed.error().message();
        reply(r);
        return {};
      }
      // How to signal it: a caller's ^C, or (when nobody is left to read its output or its
      // status) SIGKILL for the command and its group.
      return [&exec_channel, id = *handed](int sig) { exec_channel.signal(id, sig); };
    };
    control_server = std::make_unique<ControlServer>(io, std::move(control_listener),
                                                     std::move(handlers));
    control_server->start();
  }
  io.run();
  control_server.reset();
  auto init_status = launched->init.wait();
  int agent_status = 0;
  ssize_t n = ::read(launched->status_read.get(), &agent_status, sizeof agent_status);
  if (n != static_cast<ssize_t>(sizeof agent_status)) {
    // Init died without reporting (it was killed): the agent went with it.
    agent_status = init_status.ok() ? *init_status : W_EXITCODE(0, SIGKILL);
  }
  const uint64_t oom_kills = cgroup->oom_kills();
  if (auto st = cgroup->remove(); !st) log::warn("supervisor", st.error().message());

  const int code = sys::exit_code_of(agent_status);
  const int sig = WIFSIGNALED(agent_status) ? WTERMSIG(agent_status) : 0;
  std::string detail;
  if (sig == SIGKILL && oom_kills > 0) {
    detail = "killed by the OOM killer: memory_max " +
             std::to_string(limits.memory_max.value_or(0)) + " bytes reached";
    log::error("supervisor", "agent " + detail);
  } else if (sig != 0) {
    detail = std::string("killed by signal ") + ::sigabbrev_np(sig);
  }
  events.emit(ocsf::process_exit(options.name, agent, code, sig, detail));
  // Nothing of the sandbox is left (its processes, cgroup and mounts are gone; the network
  // namespace goes with our thread): whoever waits may go on.
  if (options.status != nullptr) options.status->exited(code);
  // The reaper is ours, not the sandbox's: its wake-up and exit come after the status, off the
  // path of whoever waits for it.
  reaper->finish();
  return code;
}

}  // namespace openshell::supervisor
