// Caller identification (DESIGN.md §4 "Binary identity") against real sockets and processes.
// The test's own network namespace stands in for the sandbox's: /proc/<self>/net/tcp lists the
// namespace the test runs in, so getpid() plays the sandbox's init, and a temporary file plays
// the sandbox cgroup's cgroup.procs, listing exactly the pids a case wants considered.
#include "supervisor/proxy/identity.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <future>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/unique_fd.hpp"
#include "tests/support/harness.hpp"

using namespace openshell::testing;
using openshell::UniqueFd;
using openshell::supervisor::proxy::identify_peer;

namespace {

constexpr int kHoldSeconds = 60;  // the probes exit sooner: when the test closes its end

struct Listener {
  UniqueFd fd;
  std::string port;
};

Listener listen_on(const std::string& host, bool v6only = true) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  sockaddr_in in{};
  sockaddr_in6 in6{};
  if (inet_pton(AF_INET, host.c_str(), &in.sin_addr) == 1) {
    in.sin_family = AF_INET;
    std::memcpy(&ss, &in, sizeof in);
    len = sizeof in;
  } else if (inet_pton(AF_INET6, host.c_str(), &in6.sin6_addr) == 1) {
    in6.sin6_family = AF_INET6;
    std::memcpy(&ss, &in6, sizeof in6);
    len = sizeof in6;
  } else {
    throw std::invalid_argument("not a numeric address: " + host);
  }
  Listener l;
  l.fd = UniqueFd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(l.fd.valid());
  if (ss.ss_family == AF_INET6) {
    const int on = v6only ? 1 : 0;
    REQUIRE(setsockopt(l.fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) == 0);
  }
  REQUIRE(bind(l.fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) == 0);
  REQUIRE(listen(l.fd.get(), 8) == 0);
  len = sizeof ss;
  REQUIRE(getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  const in_port_t port = ss.ss_family == AF_INET
                             ? reinterpret_cast<const sockaddr_in*>(&ss)->sin_port
                             : reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port;
  l.port = std::to_string(ntohs(port));
  return l;
}

// The server side of one connection, as the proxy sees it after accept().
struct Accepted {
  UniqueFd fd;
  sockaddr_storage client{};  // getpeername: the client socket's local address
  sockaddr_storage server{};  // getsockname: the client socket's remote address
};

Accepted accept_one(const Listener& l) {
  pollfd pfd{l.fd.get(), POLLIN, 0};
  REQUIRE(poll(&pfd, 1, 10000) == 1);
  Accepted a;
  socklen_t len = sizeof a.client;
  a.fd = UniqueFd(accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&a.client), &len, SOCK_CLOEXEC));
  REQUIRE(a.fd.valid());
  len = sizeof a.server;
  REQUIRE(getsockname(a.fd.get(), reinterpret_cast<sockaddr*>(&a.server), &len) == 0);
  return a;
}

// A process the test started: SIGKILLed and reaped at scope exit.
class Spawned {
 public:
  explicit Spawned(pid_t pid) : pid_(pid) {}
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  ~Spawned() {
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

// Waits for the probe's line saying the connect is done (and, with fork, that the child shares
// the socket), then returns the whole output.
std::string wait_for_connected(const std::string& out_file, const std::string& host,
                               const std::string& port) {
  const std::string line = "connect " + host + ":" + port + " ok";
  const bool done = eventually([&] { return read_text(out_file).find(line) != std::string::npos; });
  INFO("probe output: " << read_text(out_file));
  REQUIRE(done);
  return read_text(out_file);
}

// The number after `key` ("pid=", "child=") in a probe's output.
pid_t value_after(const std::string& out, const std::string& key) {
  const size_t at = out.find(key);
  if (at == std::string::npos) return -1;
  return static_cast<pid_t>(std::stol(out.substr(at + key.size())));
}

std::string procs_file(const TempDir& dir, const std::vector<pid_t>& pids) {
  std::string text;
  for (pid_t pid : pids) text += std::to_string(pid) + "\n";
  return dir.write("cgroup.procs", text);
}

// A pid that surely names no process: a child we started and reaped.
pid_t gone_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

std::string probe_path() { return std::filesystem::canonical(helper("hold_connect")).string(); }

// One probe connected to a fresh listener on `listen_host`, dialling `dial_host`, and checked
// to be identified as itself with a one-entry chain.
void check_direct(const std::string& listen_host, const std::string& dial_host,
                  bool v6only = true) {
  TempDir dir;
  Listener l = listen_on(listen_host, v6only);
  const std::string out = dir.path() + "/out";
  Spawned probe(spawn_process(
      {helper("hold_connect"), dial_host, l.port, std::to_string(kHoldSeconds)}, out));
  Accepted a = accept_one(l);
  wait_for_connected(out, dial_host, l.port);

  const auto procs = procs_file(dir, {gone_pid(), getpid(), probe.pid()});
  auto id = identify_peer(getpid(), procs, a.client, a.server);
  INFO((id ? "" : id.error().message()));
  REQUIRE(id.ok());
  CHECK(id->pid == probe.pid());
  CHECK(id->chain == std::vector<std::string>{probe_path()});
}

}  // namespace

TEST_CASE("the process holding an accepted IPv4 connection is identified") {
  check_direct("127.0.0.1", "127.0.0.1");
}

TEST_CASE("an IPv6 loopback connection is identified") { check_direct("::1", "::1"); }

TEST_CASE("v4-mapped rows match the plain IPv4 addresses the proxy sees") {
  SECTION("AF_INET client, dual-stack listener: the proxy sees ::ffff:127.0.0.1") {
    check_direct("::", "127.0.0.1", /*v6only=*/false);
  }
  SECTION("AF_INET6 client to a mapped address: its row is in tcp6") {
    check_direct("127.0.0.1", "::ffff:127.0.0.1");
  }
}

TEST_CASE("the ancestor chain lists parents' exes and stops before the sandbox init") {
  TempDir dir;
  Listener l = listen_on("127.0.0.1");
  const std::string out = dir.path() + "/out";
  const std::string probe_cmd =
      helper("hold_connect") + " 127.0.0.1 " + l.port + " " + std::to_string(kHoldSeconds);
  const std::string sh = std::filesystem::canonical("/bin/sh").string();

  SECTION("sh -> probe") {
    // "; true" keeps sh waiting as the probe's parent instead of exec'ing it.
    Spawned shell(spawn_process({"/bin/sh", "-c", probe_cmd + "; true"}, out));
    Accepted a = accept_one(l);
    const pid_t probe = value_after(wait_for_connected(out, "127.0.0.1", l.port), "pid=");
    REQUIRE(probe > 0);
    const auto procs = procs_file(dir, {shell.pid(), probe});

    auto id = identify_peer(getpid(), procs, a.client, a.server);
    INFO((id ? "" : id.error().message()));
    REQUIRE(id.ok());
    CHECK(id->pid == probe);
    CHECK(id->chain == std::vector<std::string>{probe_path(), sh});

    // With the shell as the init, the chain ends at the probe itself.
    auto below_sh = identify_peer(shell.pid(), procs, a.client, a.server);
    REQUIRE(below_sh.ok());
    CHECK(below_sh->chain == std::vector<std::string>{probe_path()});
  }
  SECTION("sh -> sh -> probe") {
    Spawned shell(
        spawn_process({"/bin/sh", "-c", "/bin/sh -c '" + probe_cmd + "; true'; true"}, out));
    Accepted a = accept_one(l);
    const pid_t probe = value_after(wait_for_connected(out, "127.0.0.1", l.port), "pid=");
    REQUIRE(probe > 0);
    const auto procs = procs_file(dir, {shell.pid(), probe});

    auto id = identify_peer(getpid(), procs, a.client, a.server);
    INFO((id ? "" : id.error().message()));
    REQUIRE(id.ok());
    CHECK(id->pid == probe);
    CHECK(id->chain == std::vector<std::string>{probe_path(), sh, sh});
  }
}

TEST_CASE("a socket held by two processes is refused as ambiguous") {
  TempDir dir;
  Listener l = listen_on("127.0.0.1");
  const std::string out = dir.path() + "/out";
  Spawned probe(spawn_process(
      {helper("hold_connect"), "127.0.0.1", l.port, std::to_string(kHoldSeconds), "fork"}, out));
  Accepted a = accept_one(l);
  const std::string text = wait_for_connected(out, "127.0.0.1", l.port);
  const pid_t child = value_after(text, "child=");
  INFO("probe output: " << text);
  REQUIRE(child > 0);

  auto id = identify_peer(getpid(), procs_file(dir, {probe.pid(), child}), a.client, a.server);
  REQUIRE_FALSE(id.ok());
  const std::string message = id.error().message();
  INFO(message);
  CHECK(message.find("ambiguous") != std::string::npos);
  CHECK(message.find("held by 2 processes") != std::string::npos);
  CHECK(message.find(std::to_string(probe.pid())) != std::string::npos);
  CHECK(message.find(std::to_string(child)) != std::string::npos);

  // Only one of them in the sandbox's cgroup: that one is the owner the sandbox can answer for.
  auto parent_only = identify_peer(getpid(), procs_file(dir, {probe.pid()}), a.client, a.server);
  REQUIRE(parent_only.ok());
  CHECK(parent_only->pid == probe.pid());
}

TEST_CASE("sockets that cannot be attributed are refused") {
  TempDir dir;
  Listener l = listen_on("127.0.0.1");
  const std::string out = dir.path() + "/out";
  Spawned probe(spawn_process(
      {helper("hold_connect"), "127.0.0.1", l.port, std::to_string(kHoldSeconds)}, out));
  Accepted a = accept_one(l);
  wait_for_connected(out, "127.0.0.1", l.port);
  const auto procs = procs_file(dir, {probe.pid()});

  SECTION("no row for the tuple") {
    // A port no socket is connected from: bind one, note its port, close it.
    sockaddr_storage unused = a.client;
    {
      UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in any{};
      any.sin_family = AF_INET;
      any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      REQUIRE(bind(s.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) == 0);
      socklen_t len = sizeof unused;
      REQUIRE(getsockname(s.get(), reinterpret_cast<sockaddr*>(&unused), &len) == 0);
    }
    auto id = identify_peer(getpid(), procs, unused, a.server);
    REQUIRE_FALSE(id.ok());
    INFO(id.error().message());
    CHECK(id.error().code == std::errc::no_such_file_or_directory);
  }
  SECTION("the reversed tuple is the server's socket, which no sandbox process holds") {
    auto id = identify_peer(getpid(), procs, a.server, a.client);
    REQUIRE_FALSE(id.ok());
    INFO(id.error().message());
    CHECK(id.error().code == std::errc::no_such_process);
  }
  SECTION("the owner is not among the sandbox's processes") {
    auto id = identify_peer(getpid(), procs_file(dir, {getpid(), gone_pid()}), a.client, a.server);
    REQUIRE_FALSE(id.ok());
    INFO(id.error().message());
    CHECK(id.error().code == std::errc::no_such_process);
  }
  SECTION("the client has exited: its socket is closed") {
    kill(probe.pid(), SIGKILL);
    REQUIRE(eventually([&] { return waitpid(probe.pid(), nullptr, WNOHANG) == probe.pid(); }));
    auto id = identify_peer(getpid(), procs, a.client, a.server);
    REQUIRE_FALSE(id.ok());
    INFO(id.error().message());
    CHECK((id.error().code == std::errc::not_connected ||
           id.error().code == std::errc::no_such_file_or_directory));
  }
  SECTION("a pids file that is not one pid a line is an error, not an empty sandbox") {
    auto id = identify_peer(getpid(), dir.write("bad.procs", "12 oops\n"), a.client, a.server);
    REQUIRE_FALSE(id.ok());
  }
}

TEST_CASE("a deleted binary is named by the path it was started from") {
  TempDir dir;
  const std::string copy = dir.path() + "/hold_connect";
  std::filesystem::copy_file(helper("hold_connect"), copy);
  std::filesystem::permissions(copy, std::filesystem::perms::owner_all);
  Listener l = listen_on("127.0.0.1");
  const std::string out = dir.path() + "/out";
  Spawned probe(spawn_process({copy, "127.0.0.1", l.port, std::to_string(kHoldSeconds)}, out));
  Accepted a = accept_one(l);
  wait_for_connected(out, "127.0.0.1", l.port);
  REQUIRE(unlink(copy.c_str()) == 0);

  auto id = identify_peer(getpid(), procs_file(dir, {probe.pid()}), a.client, a.server);
  INFO((id ? "" : id.error().message()));
  REQUIRE(id.ok());
  CHECK(id->chain == std::vector<std::string>{copy});
}

TEST_CASE("a socket kept only in a thread's own fd table is still found") {
  // unshare(CLONE_FILES) gives one thread a private copy of the fd table; /proc/<pid>/fd shows
  // the leader's table only, so after the leader closes its copy the socket lives on only
  // under /proc/<pid>/task/<tid>/fd.
  Listener l = listen_on("127.0.0.1");
  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(static_cast<in_port_t>(std::stoi(l.port)));
  REQUIRE(connect(client.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0);
  Accepted a = accept_one(l);

  std::promise<int> unshared;
  std::promise<void> release;
  std::thread holder([&] {
    unshared.set_value(unshare(CLONE_FILES) == 0 ? 0 : errno);
    release.get_future().wait();
  });
  const int err = unshared.get_future().get();
  client.reset();  // only the thread's copy is left
  TempDir dir;
  auto id = identify_peer(getpid(), procs_file(dir, {getpid()}), a.client, a.server);
  release.set_value();
  holder.join();

  REQUIRE(err == 0);
  INFO((id ? "" : id.error().message()));
  REQUIRE(id.ok());
  CHECK(id->pid == getpid());
  // The owner is the init here: its exe and nothing above it.
  CHECK(id->chain ==
        std::vector<std::string>{std::filesystem::read_symlink("/proc/self/exe").string()});
}
