#include "supervisor/commands.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <openssl/crypto.h>
#include <cstring>
#include <future>
#include <iostream>
#include <random>

#include "core/control.hpp"
#include "core/event_sink.hpp"
#include "core/log.hpp"
#include "core/policy.hpp"
#include "core/services.hpp"
#include "sys/file_util.hpp"
#include "sys/journal.hpp"
#include "sys/netns.hpp"
#include "sys/unix_socket.hpp"
#include "supervisor/proxy/server.hpp"
#include "supervisor/proxy/tls_contexts.hpp"
#include "supervisor/run.hpp"

namespace openshell::supervisor {
namespace {

constexpr int kExitUsage = 2;

std::string random_name() {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "sandbox-";
  for (int i = 0; i < 8; ++i) name += kHex[rd() % 16];
  return name;
}

void print_diagnostics(const std::vector<policy::Diagnostic>& diagnostics) {
  for (const auto& d : diagnostics) std::cerr << d.to_string() << '\n';
}

int usage_error(const std::string& message) {
  std::cerr << "openshell-supervisor: " << message << '\n';
  return kExitUsage;
}

struct RunArgs {
  std::string policy_file;
  std::string name;
  std::string workdir;
  std::string events_file;
  std::string control_socket;
  std::string cgroup = "auto";
  bool journal = false;
  bool cgroup_delegated = false;
  bool workdir_readonly = false;
  bool workdir_from_daemon = false;
  std::string log_file;
  int status_fd = -1;
  int netns_fd = -1;
  bool netns_on_status = false;
  bool services_on_status = false;
  std::vector<std::string> env;
  std::vector<std::string> resolve;
  std::vector<std::string> defaults;  // --default KEY=VALUE
  std::vector<std::string> upstream_ca;
  std::string upstream_proxy;
  int64_t owner = -1;
  std::vector<std::string> command;
};

int run_sandbox_command(const RunArgs& args, StatusReporter& status);

// --services-on-status: the daemon writes the sandbox's providers and routes on the status
// channel right after starting us: a 4-byte big-endian length, then that much JSON
// (core/services). Waited for at most kServicesWait.
constexpr int kServicesWaitMs = 10'000;

Status read_exactly(int fd, char* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, kServicesWaitMs);
    if (ready == 0) return Error::from_errno("waiting for them", ETIMEDOUT);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("poll");
    }
    const ssize_t r = ::read(fd, out + got, n - got);
    if (r == 0) return Error::invalid("the status channel closed before they came");
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Error::from_errno("read");
    }
    got += static_cast<size_t>(r);
  }
  return {};
}

Result<services::Services> read_services(int fd) {
  if (fd < 0) return Error::invalid("--services-on-status needs --status-fd");
  unsigned char length[4];
  if (auto st = read_exactly(fd, reinterpret_cast<char*>(length), 4); !st) return st.error();
  const size_t n = (size_t{length[0]} << 24) | (size_t{length[1]} << 16) |
                   (size_t{length[2]} << 8) | size_t{length[3]};
  if (n > services::kMaxBytes) return Error::invalid("larger than " + std::to_string(services::kMaxBytes) + " bytes");
  std::string text(n, '\0');
  if (auto st = read_exactly(fd, text.data(), n); !st) return st.error();
  const auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  // The text holds secrets: it is wiped, and never quoted in an error.
  OPENSSL_cleanse(text.data(), text.size());
  return services::from_json(parsed);
}

int run_command(const RunArgs& args) {
  // Whoever started us may have blocked signals (openshelld blocks SIGTERM, SIGINT and SIGCHLD
  // for its event loop, and a blocked mask survives exec): we stop on SIGTERM like any service,
  // and forward what we catch, so nothing may stay blocked.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // The sandbox CA's key (and, later, credentials) live in this process's memory only: no core
  // dump of ours may write them to disk.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    return usage_error(std::string("run: cannot make this process non-dumpable: ") +
                       std::strerror(errno));
  int status_fd = args.status_fd;
  if (status_fd >= 0 && ::fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0)
    return usage_error("run: --status-fd " + std::to_string(status_fd) + " is not open");
  if (status_fd >= 0 && status_fd <= 2) {
    // The status channel is not the agent's to write on: it moves above stdio, whose slot
    // gets /dev/null.
    status_fd = ::fcntl(status_fd, F_DUPFD_CLOEXEC, 3);
    const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (status_fd < 0 || null_fd < 0 || ::dup2(null_fd, args.status_fd) < 0)
      return usage_error("run: cannot move --status-fd above stdio");
    ::close(null_fd);
  }
  if (args.netns_fd >= 0 && ::fcntl(args.netns_fd, F_SETFD, FD_CLOEXEC) != 0)
    return usage_error("run: --netns-fd " + std::to_string(args.netns_fd) + " is not open");
  if (!args.log_file.empty()) {
    // Our own lines go there; stdin, stdout and stderr are the agent's.
    const int fd = ::open(args.log_file.c_str(),
                          O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return usage_error("run: cannot open --log " + args.log_file);
    log::set_output_fd(fd);
  }
  // "exit N" whatever N is: run_sandbox's report if it got that far, ours otherwise.
  StatusReporter status(status_fd);
  const int code = run_sandbox_command(args, status);
  status.exited(code);
  return code;
}

int run_sandbox_command(const RunArgs& args, StatusReporter& status) {
  if (::geteuid() != 0)
    return usage_error("run needs root: it creates namespaces, cgroups and mounts");
  RunOptions options;
  options.name = args.name.empty() ? random_name() : args.name;
  if (!valid_sandbox_name(options.name))
    return usage_error("invalid sandbox name '" + options.name +
                       "': use 1-63 of a-z, 0-9 and '-', starting with a letter or digit");
  if (args.command.empty()) return usage_error("run: no command given after --");
  if (auto st = control::check_env(args.env); !st) return usage_error("run: " + st.error().message());
  // TLS termination's CA (its key in this process only), made on a thread of its own: OpenSSL's
  // first use (~1.5 ms) overlaps with the policy, the events, the cgroup and the network's
  // thread. The TLS contexts come with the first inspected connection.
  if (!args.upstream_proxy.empty())
    if (auto proxy = net::parse_upstream_proxy(args.upstream_proxy); !proxy)
      return usage_error("run: --upstream-proxy: " + proxy.error().message());
  auto tls_made = std::async(std::launch::async, [name = options.name, files = args.upstream_ca] {
    // Nothing of OpenSSL's needs tearing down at our exit (~1 ms of freeing at every sandbox's
    // end otherwise): the process is gone a moment later.
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
    return proxy::Termination::make(name, files);
  });
  // Before the policy, the event files and the cgroup: the network's thread (libnftables, the
  // first commit) is a start's longest part, and from here it overlaps with all of them.
  UniqueFd spare(args.netns_fd);
  if (args.netns_on_status && status.fd() >= 0) {
    // openshelld's spare, sent before we started: already waiting in the socket.
    auto sent = sys::receive_message(status.fd(), 1, 1);
    if (sent && sent->has_value() && (*sent)->fds.size() == 1) spare = std::move((*sent)->fds[0]);
  }
  std::shared_ptr<const services::Services> services;
  if (args.services_on_status) {
    auto got = read_services(status.fd());
    if (!got) {
      log::error("supervisor", got.error().wrap("the daemon's providers and routes").message());
      return kExitSetupFailed;
    }
    services = std::make_shared<const services::Services>(std::move(*got));
  }
  if (spare && !sys::is_netns(spare.get())) {
    log::warn("supervisor", "the network namespace given is none: making one");
    spare.reset();
  }
  auto network = SandboxNetwork::start(std::move(spare));
  if (args.cgroup == "v1") options.cgroup_version = sys::CgroupVersion::kV1;
  if (args.cgroup == "v2") options.cgroup_version = sys::CgroupVersion::kV2;
  for (const auto& entry : args.resolve) {
    auto eq = entry.find('=');
    auto ip = eq == std::string::npos ? Result<IpAddress>(Error::invalid(""))
                                      : parse_ip(entry.substr(eq + 1));
    if (eq == 0 || !ip.ok())
      return usage_error("run: --resolve takes NAME=ADDRESS, got '" + entry.substr(0, 64) + "'");
    std::string name = entry.substr(0, eq);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    options.static_hosts[name].push_back(*ip);
  }
  for (const auto& entry : args.defaults) {
    const auto eq = entry.find('=');
    std::optional<std::string> why =
        eq == std::string::npos
            ? std::optional<std::string>("expected KEY=VALUE")
            : policy::set_resource(options.resource_defaults, std::string_view(entry).substr(0, eq),
                                   std::string_view(entry).substr(eq + 1));
    if (why) return usage_error("run: --default " + entry.substr(0, 64) + ": " + *why);
  }
  if (args.owner >= 0) {
    if (args.owner > 4294967294) return usage_error("run: --owner takes a uid");
    options.owner = static_cast<uid_t>(args.owner);
  }
  options.policy_file = args.policy_file;
  options.control_socket = args.control_socket;
  options.workdir = args.workdir;
  options.workdir_readonly = args.workdir_readonly;
  options.workdir_trusted = args.workdir_from_daemon;
  options.env = args.env;
  // The agent holds placeholders, never values; what it set itself comes after and wins.
  if (services) {
    auto placeholders = services::placeholder_env(*services);
    options.env.insert(options.env.begin(), placeholders.begin(), placeholders.end());
    options.services = services;
  }
  options.command = args.command;

  options.cgroup_delegated = args.cgroup_delegated;
  options.status = &status;
  options.upstream_proxy = args.upstream_proxy;
  // Asked for by the plan (the CA's certificate) and by the proxy: the thread's one answer.
  std::optional<Result<std::shared_ptr<proxy::Termination>>> tls;
  options.tls = [&tls, &tls_made]() -> Result<std::shared_ptr<proxy::Termination>> {
    if (!tls) tls = tls_made.get();
    return *tls;
  };

  auto tee = std::make_unique<TeeSink>();
  if (!args.events_file.empty()) {
    auto file = JsonlFileSink::open(args.events_file);
    if (!file) {
      log::error("supervisor", file.error().message());
      return kExitSetupFailed;
    }
    tee->add(std::move(*file));
  }
  if (args.journal) tee->add(std::make_unique<sys::JournalSink>());
  std::unique_ptr<EventSink> sink = std::move(tee);

  std::shared_ptr<const policy::Policy> policy;
  if (args.policy_file.empty()) {
    policy = policy::default_policy();
  } else {
    auto parsed = policy::parse_policy_file(args.policy_file);
    if (!parsed.ok()) {
      print_diagnostics(parsed.diagnostics);
      std::string first =
          parsed.diagnostics.empty() ? "invalid policy" : parsed.diagnostics.front().to_string();
      sink->emit(ocsf::config_change(options.name, "Rejected", ocsf::Severity::kMedium,
                                     ocsf::StatusId::kFailure, first,
                                     {{"policy", {{"source", args.policy_file}}}}));
      return kExitSetupFailed;
    }
    policy = parsed.policy;
  }

  auto result = run_sandbox(*policy, options, *sink, *network);
  if (!result) {
    log::error("supervisor", result.error().message());
    return kExitSetupFailed;
  }
  return *result;
}

int check_policy_command(const std::vector<std::string>& files) {
  int status = 0;
  for (const auto& file : files) {
    auto parsed = policy::parse_policy_file(file);
    if (parsed.ok()) {
      std::cout << file << ": ok\n";
    } else {
      print_diagnostics(parsed.diagnostics);
      status = 1;
    }
  }
  return status;
}

}  // namespace

int supervisor_main(int argc, char** argv) {
  CLI::App app{"openshell-supervisor: builds one sandbox and runs an agent in it"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(OPENSHELL_VERSION));
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log debug messages");

  RunArgs run;
  CLI::App* run_cmd = app.add_subcommand("run", "Run CMD in a new sandbox");
  run_cmd->add_option("--policy-file", run.policy_file, "Policy TOML file (default: no network)")
      ->check(CLI::ExistingFile);
  run_cmd->add_option("--name", run.name, "Sandbox name (default: sandbox-<random>)");
  run_cmd->add_option("--workdir", run.workdir, "Host directory mounted at /sandbox")
      ->check(CLI::ExistingDirectory);
  run_cmd->add_flag("--workdir-readonly", run.workdir_readonly, "Mount --workdir read-only");
  run_cmd->add_flag("--workdir-from-daemon", run.workdir_from_daemon,
                    "--workdir is openshelld's own workspace of this sandbox: opened as root even "
                    "with --owner (any other workdir is opened as the owner)");
  run_cmd->add_option("--env", run.env, "KEY=VALUE for the agent's environment")
      ->allow_extra_args(false);
  run_cmd->add_option("--resolve", run.resolve,
                      "NAME=ADDRESS: answer NAME with ADDRESS instead of the host's resolver");
  run_cmd->add_option("--default", run.defaults,
                      "KEY=VALUE: a limit where the policy's [resources] sets none (memory_max, "
                      "cpu_max, pids_max, tmp_size, shm_size; \"max\" for none)")
      ->allow_extra_args(false);
  run_cmd->add_option("--upstream-ca", run.upstream_ca,
                      "PEM FILE of extra roots trusted for upstream TLS (corporate or internal "
                      "CAs), besides the host's")
      ->check(CLI::ExistingFile)
      ->allow_extra_args(false);
  run_cmd->add_option("--upstream-proxy", run.upstream_proxy,
                      "http://HOST:PORT: dial allowed destinations through this proxy (CONNECT); "
                      "every decision stays ours");
  run_cmd->add_option("--owner", run.owner,
                      "UID the sandbox is for: policy paths and the workdir are opened with that "
                      "user's credentials, and refused where that user could not reach them");
  run_cmd->add_option("--events", run.events_file, "Append OCSF events (JSON lines) to FILE");
  run_cmd->add_option("--control", run.control_socket,
                      "Serve the control protocol on a unix socket at PATH (root only)");
  run_cmd->add_option("--cgroup", run.cgroup, "cgroup hierarchy: auto, v1 or v2 (hybrid hosts)")
      ->check(CLI::IsMember({"auto", "v1", "v2"}));
  run_cmd->add_flag("--cgroup-delegated", run.cgroup_delegated,
                    "Our own cgroup was delegated to us (systemd Delegate=yes): build the "
                    "sandbox's cgroup inside it");
  run_cmd->add_flag("--journal", run.journal,
                    "Also send events to the systemd journal (OPENSHELL_SANDBOX=, "
                    "OCSF_CLASS_UID= fields)");
  run_cmd->add_option("--log", run.log_file,
                      "Write our own log lines to FILE (stdio stays the agent's)");
  run_cmd->add_option("--status-fd", run.status_fd,
                      "Report on descriptor N: 'launched PID' once the agent runs (PID: ours), "
                      "'exit CODE' last. N may be 0 (a systemd unit's stdin): it then leaves "
                      "stdio, which gets /dev/null");
  run_cmd->add_option("--netns-fd", run.netns_fd,
                      "Descriptor N is a network namespace already set up as a sandbox's "
                      "(lo, routes, capture ruleset: openshelld's spare); use it instead of "
                      "making one");
  run_cmd->add_flag("--services-on-status", run.services_on_status,
                    "read the sandbox's providers and inference routes from the status channel "
                    "(openshelld writes them there)");
  run_cmd->add_flag("--netns-on-status", run.netns_on_status,
                    "The same, sent down the --status-fd socket before we start (how "
                    "openshelld gives it to a systemd unit)");
  run_cmd->add_option("command", run.command, "-- CMD ARGS...")->required();
  run_cmd->positionals_at_end(true);

  std::vector<std::string> policy_files;
  CLI::App* check_cmd =
      app.add_subcommand("check-policy", "Parse and validate policy files; print ok or errors");
  check_cmd->add_option("files", policy_files, "Policy TOML files")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, not a help dump.
    return usage_error(e.what());
  }
  if (verbose) log::set_min_level(log::Level::kDebug);
  if (*run_cmd) return run_command(run);
  if (*check_cmd) return check_policy_command(policy_files);
  return kExitUsage;
}

}  // namespace openshell::supervisor
