// identity_bench: how long the proxy takes to decide one connection (caller identity through
// sock_diag and the sandbox's processes, then the policy decision) as the number of processes in
// the sandbox grows. For bench/README.md; root only (cgroups, sock_diag).
//
//   identity_bench [--processes N]... [--lookups L]
//
// For each N (default 2, 50, 200) and each way of finding the caller: a cgroup made like a
// sandbox's (sys::Cgroup), a "sandbox init" process in it that forks N-2 idle processes and one
// client that connects to a listener on 127.0.0.1 and holds the connection (N processes in
// all). The bench accepts it, then times L lookups (default 2000) of identify_peer +
// egress::decide, exactly as the proxy makes them per connection, and prints
//
//   processes=N lookup=search|tracker lookups=L median_us=.. p99_us=.. min_us=.. binary=PATH
//
// search: no connect tracker, the sandbox's processes are searched for the socket. tracker: the
// init installs the connect filter (sys::build_connect_notify) as a sandbox's does, a
// ConnectTracker answers it, and the lookup finds the connect it recorded.
//
// Exit 1 on a setup failure or when a lookup fails, 2 on bad arguments. Everything made is
// removed on exit (the processes are killed with the cgroup).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/egress.hpp"
#include "core/policy.hpp"
#include "supervisor/proxy/connect_tracker.hpp"
#include "supervisor/proxy/identity.hpp"
#include "sys/cgroup.hpp"
#include "sys/unix_socket.hpp"
#include "sys/seccomp.hpp"

namespace {

using namespace openshell;

constexpr const char* kUsage = "usage: identity_bench [--processes N]... [--lookups L]\n";
constexpr long kMaxProcesses = 2000;
constexpr long kMaxLookups = 1000000;

double now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "identity_bench: %s\n", what.c_str());
  std::exit(1);
}

bool parse_count(const char* text, long max, long* out) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 1 || value > max) return false;
  *out = value;
  return true;
}

// The sandbox's init: forks `idle` processes that wait to be killed, and one client that
// connects to `port` on loopback, reports on `ready` and waits too.
[[noreturn]] void sandbox_init(long idle, uint16_t port, int ready) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (long i = 0; i < idle; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (;;) ::pause();
    }
    if (pid < 0) _exit(1);
  }
  const pid_t client = ::fork();
  if (client == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char status =
        fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 'y' : 'n';
    if (::write(ready, &status, 1) != 1) _exit(1);
    for (;;) ::pause();
  }
  for (;;) ::pause();
}

struct Result {
  std::vector<double> us;
  std::string binary;
};

Result measure(const sys::CgroupLayout& layout, long processes, long lookups,
               const policy::Policy& policy, bool use_tracker) {
  auto cgroup = sys::Cgroup::create(layout, "openshell-bench",
                                    "identity-" + std::to_string(::getpid()), {});
  if (!cgroup) die(cgroup.error().message());

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 4) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    die(std::string("listener: ") + std::strerror(errno));
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) die("pipe2");

  // The init is placed in the cgroup before it forks, so everything it starts is in it too.
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) die("pipe2");
  int handover[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, handover) != 0) die("socketpair");
  auto filter = sys::build_connect_notify();
  if (!filter) die(filter.error().message());
  const pid_t init = ::fork();
  if (init < 0) die("fork");
  if (init == 0) {
    char c = 0;
    if (::read(go[0], &c, 1) != 1) _exit(1);
    if (use_tracker) {
      int notify_fd = -1;
      if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
          sys::seccomp_install_listener_in_child(*filter, &notify_fd) != 0)
        _exit(1);
      const int passed[1] = {notify_fd};
      if (sys::send_message(handover[1], "l", 1, passed) != 0) _exit(1);
      ::close(notify_fd);
    }
    sandbox_init(processes - 2, ntohs(addr.sin_port), ready[1]);
  }
  if (auto added = cgroup->add_pid(init); !added) die(added.error().message());
  if (::write(go[1], "g", 1) != 1) die("starting the sandbox init");
  std::unique_ptr<supervisor::proxy::ConnectTracker> tracker;
  if (use_tracker) {
    auto message = sys::receive_message(handover[0], 1, 1);
    if (!message || !*message || (*message)->fds.size() != 1)
      die("the init sent no connect listener");
    auto started =
        supervisor::proxy::ConnectTracker::start(std::move((*message)->fds.front()), init);
    if (!started) die(started.error().message());
    tracker = std::move(*started);
  }
  char status = 0;
  if (::read(ready[0], &status, 1) != 1 || status != 'y') die("the client did not connect");
  const int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (accepted < 0) die("accept");

  sockaddr_storage peer{}, local{};
  socklen_t peer_len = sizeof peer, local_len = sizeof local;
  ::getpeername(accepted, reinterpret_cast<sockaddr*>(&peer), &peer_len);
  ::getsockname(accepted, reinterpret_cast<sockaddr*>(&local), &local_len);
  const int diag = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (diag < 0) die("sock_diag socket");

  Result result;
  result.us.reserve(static_cast<size_t>(lookups));
  for (long i = 0; i < lookups; ++i) {
    const double t0 = now_us();
    auto who = supervisor::proxy::identify_peer(init, cgroup->procs_file(), peer, local, diag,
                                                tracker.get());
    if (!who) die("lookup: " + who.error().message());
    auto decision = egress::decide(policy, {"api.example.test", 443, who->chain});
    const double t1 = now_us();
    if (decision.verdict != egress::Verdict::kAllow) die("the decision denied: " + decision.reason_text);
    result.us.push_back(t1 - t0);
    if (i == 0) result.binary = who->chain.empty() ? "" : who->chain.front();
  }

  ::close(diag);
  ::close(accepted);
  ::close(listener);
  for (int fd : {ready[0], ready[1], go[0], go[1], handover[0], handover[1]}) ::close(fd);
  ::kill(init, SIGKILL);
  ::waitpid(init, nullptr, 0);
  if (tracker && tracker->recorded() == 0) die("the tracker recorded no connect");
  tracker.reset();
  if (auto removed = cgroup->remove(); !removed) die(removed.error().message());
  return result;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(rank, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<long> counts;
  long lookups = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    long value = 0;
    if (i + 1 >= argc) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    if (arg == "--processes" && parse_count(argv[i + 1], kMaxProcesses, &value) && value >= 2) {
      counts.push_back(value);
    } else if (arg == "--lookups" && parse_count(argv[i + 1], kMaxLookups, &value)) {
      lookups = value;
    } else {
      std::fputs(kUsage, stderr);
      return 2;
    }
    ++i;
  }
  if (counts.empty()) counts = {2, 50, 200};
  if (::geteuid() != 0) die("must run as root (cgroups, sock_diag)");

  auto layout = sys::detect_cgroup_layout();
  if (!layout) die(layout.error().message());
  // Any binary may reach the host: the decision still walks the caller's chain.
  auto parsed = policy::parse_policy_string(
      "version = 1\n[network_policies.api]\n[[network_policies.api.endpoints]]\n"
      "host = \"api.example.test\"\nports = [443]\n",
      "identity_bench");
  if (!parsed.ok()) die("the bench's policy does not parse");

  for (long n : counts) {
    for (bool use_tracker : {false, true}) {
      auto r = measure(*layout, n, lookups, *parsed.policy, use_tracker);
      std::printf(
          "processes=%ld lookup=%s lookups=%ld median_us=%.1f p99_us=%.1f min_us=%.1f binary=%s\n",
          n, use_tracker ? "tracker" : "search", lookups, percentile(r.us, 50),
          percentile(r.us, 99), percentile(r.us, 0), r.binary.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
