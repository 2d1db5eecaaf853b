// The supervisor's control socket (issue 4 item 3): status, policy updates, shutdown, and what
// garbage and strangers get. The upstream is a namespace the test makes (tests/support/upstream).
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "core/control.hpp"
#include "sys/unix_socket.hpp"
#include "tests/support/events.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/upstream.hpp"

using namespace openshell;
using namespace openshell::testing;

namespace {

std::string endpoint_policy(const std::string& host, const std::string& port) {
  std::string p = test_policy();
  p += "[network_policies.upstream]\n[[network_policies.upstream.endpoints]]\nhost = \"" + host +
       "\"\nports = [" + port + "]\n";
  return p;
}

// One request on a fresh connection; the reply, or the error that stood in its way.
Result<control::Reply> ask(const std::string& socket, const std::string& frame) {
  auto fd = sys::connect_seqpacket(socket);
  if (!fd) return fd.error();
  if (int err = sys::send_message(fd->get(), frame.data(), frame.size(), {}); err != 0)
    return Error::from_errno("send", err);
  auto message = sys::receive_message(fd->get(), control::kMaxFrame, 0);
  if (!message) return message.error();
  if (!message->has_value()) return Error::invalid("closed without a reply");
  return control::parse_reply((*message)->frame);
}

Result<control::Reply> ask(const std::string& socket, const control::Request& request) {
  auto frame = control::encode_request(request);
  if (!frame) return frame.error();
  return ask(socket, *frame);
}

}  // namespace

TEST_CASE("control socket: status, policy updates that close tunnels, garbage, shutdown") {
  UpstreamHost up;
  up.start(8080, "echo");
  TempDir dir;
  const std::string socket = dir.path() + "/control.sock";
  const std::string events_file = dir.path() + "/events.jsonl";
  const std::string output = dir.path() + "/out.txt";
  pid_t supervisor = spawn_process(
      {supervisor_bin(), "run", "--policy-file",
       dir.write("p.toml", endpoint_policy("upstream.test", "8080")), "--name",
       unique_name("ctl"), "--events", events_file, "--control", socket, "--resolve",
       "upstream.test=" + up.address(), "--", "/bin/sh", "-c",
       helper("connect_tunnel") + " 10.200.0.1 3128 upstream.test:8080 60; exec /bin/sleep 60"},
      output);
  REQUIRE(eventually([&] { return read_text(output).find("tunnel 200") != std::string::npos; }));
  struct stat st {};
  REQUIRE(::stat(socket.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  // Status names the sandbox and its agent.
  control::Request status;
  status.op = control::Op::kStatus;
  auto s = ask(socket, status);
  REQUIRE(s.ok());
  REQUIRE(s->ok);
  CHECK(s->data["supervisor_pid"] == supervisor);
  CHECK(s->data["agent_pid"].get<int>() > 0);
  CHECK(s->data["network_rules"] == 1);

  // Garbage and wrong requests: an error reply each; the server goes on.
  for (const std::string& frame :
       {std::string("not json"), std::string(R"({"op":"reboot"})"),
        std::string(R"({"op":"exec","argv":"sh"})"), std::string(R"({"op":"status","x":1})")}) {
    auto r = ask(socket, frame);
    REQUIRE(r.ok());
    CHECK_FALSE(r->ok);
    CHECK(r->error.find("bad request") != std::string::npos);
  }
  // A frame larger than the protocol allows, and one with too many descriptors.
  {
    auto fd = sys::connect_seqpacket(socket);
    REQUIRE(fd.ok());
    const std::string big(control::kMaxFrame + 10, 'x');
    REQUIRE(sys::send_message(fd->get(), big.data(), big.size(), {}) == 0);
    auto reply = sys::receive_message(fd->get(), control::kMaxFrame, 0);
    REQUIRE(reply.ok());
    REQUIRE(reply->has_value());
    CHECK_FALSE(control::parse_reply((*reply)->frame)->ok);
    // ... and then the connection is closed.
    auto after = sys::receive_message(fd->get(), control::kMaxFrame, 0);
    REQUIRE(after.ok());
    CHECK_FALSE(after->has_value());
  }
  {
    auto fd = sys::connect_seqpacket(socket);
    REQUIRE(fd.ok());
    const int many[4] = {0, 1, 2, 0};
    const std::string frame = R"({"op":"status"})";
    REQUIRE(sys::send_message(fd->get(), frame.data(), frame.size(), many) == 0);
    auto reply = sys::receive_message(fd->get(), control::kMaxFrame, 0);
    REQUIRE(reply.ok());
    REQUIRE(reply->has_value());
    CHECK_FALSE(control::parse_reply((*reply)->frame)->ok);
  }
  // exec without descriptors for its stdio is refused.
  control::Request exec;
  exec.op = control::Op::kExec;
  exec.exec.argv = {"/bin/true"};
  auto e = ask(socket, exec);
  REQUIRE(e.ok());
  CHECK_FALSE(e->ok);

  // A non-root caller is refused.
  {
    int sp[2];
    REQUIRE(::pipe(sp) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::close(sp[0]);
      if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(3);
      // The socket file is 0600 root: connecting is refused by the file system already.
      auto fd = sys::connect_seqpacket(socket);
      _exit(fd.ok() ? 1 : 0);
    }
    ::close(sp[1]);
    ::close(sp[0]);
    int wstatus = 0;
    REQUIRE(::waitpid(child, &wstatus, 0) == child);
    CHECK(WEXITSTATUS(wstatus) == 0);
  }

  // A broken policy: rejected with file:line:col, nothing changes, the tunnel stays.
  control::Request broken;
  broken.op = control::Op::kPolicyUpdate;
  broken.policy_toml = "version = 1\n[network_policies.x\n";
  auto b = ask(socket, broken);
  REQUIRE(b.ok());
  CHECK_FALSE(b->ok);
  REQUIRE_FALSE(b->details.empty());
  CHECK(b->details.front().find("control socket:2:") != std::string::npos);
  CHECK(read_text(output).find("tunnel closed") == std::string::npos);

  // A policy without the endpoint: applied, and the open tunnel is closed.
  control::Request without;
  without.op = control::Op::kPolicyUpdate;
  without.policy_toml = test_policy();
  auto w = ask(socket, without);
  REQUIRE(w.ok());
  CHECK(w->ok);
  CHECK(w->data["network_rules"] == 0);
  CHECK(eventually([&] { return read_text(output).find("tunnel closed") != std::string::npos; }));

  // Shutdown: the agent gets SIGTERM, the supervisor exits with its status, the socket goes.
  control::Request shutdown;
  shutdown.op = control::Op::kShutdown;
  auto d = ask(socket, shutdown);
  REQUIRE(d.ok());
  CHECK(d->ok);
  int wstatus = 0;
  REQUIRE(::waitpid(supervisor, &wstatus, 0) == supervisor);
  CHECK(WIFEXITED(wstatus));
  CHECK(WEXITSTATUS(wstatus) == 128 + SIGTERM);
  CHECK_FALSE(path_exists(socket));
  auto events = read_events(events_file);
  CHECK(find_event(events, 5019, "Rejected") != nullptr);
}

TEST_CASE("control socket: a path held by a live supervisor is refused; a stale one is reused") {
  TempDir dir;
  const std::string socket = dir.path() + "/control.sock";
  const std::string output = dir.path() + "/out.txt";
  const std::string policy = dir.write("p.toml", test_policy());
  pid_t first = spawn_process({supervisor_bin(), "run", "--policy-file", policy, "--control",
                               socket, "--", "/bin/sleep", "30"},
                              output);
  REQUIRE(eventually([&] { return path_exists(socket); }));
  auto second = run_process(
      {supervisor_bin(), "run", "--policy-file", policy, "--control", socket, "--", "/bin/true"});
  CHECK(second.exit_code == 125);
  CHECK(second.err.find("in use") != std::string::npos);
  // SIGKILL leaves the socket file behind; the next supervisor takes the path over.
  REQUIRE(::kill(first, SIGKILL) == 0);
  int wstatus = 0;
  REQUIRE(::waitpid(first, &wstatus, 0) == first);
  REQUIRE(path_exists(socket));
  auto third = run_process(
      {supervisor_bin(), "run", "--policy-file", policy, "--control", socket, "--", "/bin/true"});
  INFO(third.err);
  CHECK(third.exit_code == 0);
  CHECK_FALSE(path_exists(socket));
  CHECK_FALSE(path_exists(socket + ".lock"));
}

namespace {

struct ExecResult {
  std::vector<control::Reply> replies;  // as they came: started, then exited (or an error)
  std::string output;                   // stdout and stderr together
};

ExecResult exec_in(const std::string& socket, std::vector<std::string> argv,
                   std::vector<std::string> env = {}, std::string cwd = "", int nfds = 3) {
  ExecResult result;
  control::Request request;
  request.op = control::Op::kExec;
  request.exec.argv = std::move(argv);
  request.exec.env = std::move(env);
  request.exec.cwd = std::move(cwd);
  auto frame = control::encode_request(request);
  REQUIRE(frame.ok());
  auto fd = sys::connect_seqpacket(socket);
  REQUIRE(fd.ok());
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  UniqueFd read_end(out[0]), write_end(out[1]);
  UniqueFd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int stdio[3] = {null_in.get(), write_end.get(), write_end.get()};
  REQUIRE(sys::send_message(fd->get(), frame->data(), frame->size(),
                            std::span(stdio, static_cast<size_t>(nfds))) == 0);
  write_end.reset();
  null_in.reset();
  for (;;) {
    auto message = sys::receive_message(fd->get(), control::kMaxFrame, 0);
    REQUIRE(message.ok());
    if (!message->has_value()) break;
    auto reply = control::parse_reply((*message)->frame);
    REQUIRE(reply.ok());
    result.replies.push_back(*reply);
    if (!reply->ok || reply->data.value("event", "") == "exited") break;
  }
  char buf[4096];
  for (ssize_t n; (n = ::read(read_end.get(), buf, sizeof buf)) > 0;)
    result.output.append(buf, static_cast<size_t>(n));
  return result;
}

int exit_code(const ExecResult& r) {
  REQUIRE_FALSE(r.replies.empty());
  const auto& last = r.replies.back();
  REQUIRE(last.ok);
  return last.data["exit_code"].get<int>();
}

}  // namespace

TEST_CASE("control socket: exec runs commands inside the sandbox, as the agent is") {
  TempDir dir;
  const std::string socket = dir.path() + "/control.sock";
  const std::string output = dir.path() + "/out.txt";
  pid_t supervisor = spawn_process({supervisor_bin(), "run", "--policy-file",
                                    dir.write("p.toml", test_policy()), "--control", socket,
                                    "--env", "FROM_RUN=1", "--", "/bin/sleep", "60"},
                                   output);
  REQUIRE(eventually([&] { return path_exists(socket); }));

  auto hi = exec_in(socket, {"echo", "hi"});
  REQUIRE(hi.replies.size() == 2);
  CHECK(hi.replies[0].data["event"] == "started");
  CHECK(hi.replies[0].data["pid"].get<int>() > 2);  // init is 1, the agent 2
  CHECK(exit_code(hi) == 0);
  CHECK(hi.output == "hi\n");

  CHECK(exit_code(exec_in(socket, {"/bin/sh", "-c", "exit 7"})) == 7);

  // The sandbox's environment, with the request's additions; the requested directory.
  auto env = exec_in(socket, {"/bin/sh", "-c", "echo $FROM_RUN $EXTRA; pwd"}, {"EXTRA=two"},
                     "/tmp");
  CHECK(exit_code(env) == 0);
  CHECK(env.output == "1 two\n/tmp\n");

  // Confined like the agent: uid 1000, no capabilities, no_new_privs, seccomp filtering.
  auto ids = exec_in(socket, {"/bin/sh", "-c",
                              "id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"});
  CHECK(exit_code(ids) == 0);
  CHECK(ids.output.find("1000\n") == 0);
  CHECK(ids.output.find("CapEff:\t0000000000000000") != std::string::npos);
  CHECK(ids.output.find("NoNewPrivs:\t1") != std::string::npos);
  CHECK(ids.output.find("Seccomp:\t2") != std::string::npos);

  // A command that does not exist, and a request without proper stdio: errors, not hangs.
  auto missing = exec_in(socket, {"/no/such/command"});
  REQUIRE_FALSE(missing.replies.empty());
  CHECK_FALSE(missing.replies.back().ok);
  CHECK(missing.replies.back().error.find("No such file") != std::string::npos);
  auto two_fds = exec_in(socket, {"echo", "x"}, {}, "", 2);
  REQUIRE_FALSE(two_fds.replies.empty());
  CHECK_FALSE(two_fds.replies.back().ok);

  // A caller that goes away takes its command along, with what the command started.
  {
    control::Request request;
    request.op = control::Op::kExec;
    request.exec.argv = {"/bin/sh", "-c", "sleep 1000 & exec sleep 1001"};
    auto frame = control::encode_request(request);
    REQUIRE(frame.ok());
    auto fd = sys::connect_seqpacket(socket);
    REQUIRE(fd.ok());
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    const int stdio[3] = {null.get(), null.get(), null.get()};
    REQUIRE(sys::send_message(fd->get(), frame->data(), frame->size(), stdio) == 0);
    auto started = sys::receive_message(fd->get(), control::kMaxFrame, 0);
    REQUIRE(started.ok());
    REQUIRE(started->has_value());
    CHECK(control::parse_reply((*started)->frame)->data["event"] == "started");
    auto both_run = [] {
      return run_process({"/usr/bin/pgrep", "-c", "-f", "^sleep 100[01]$"}).out == "2\n";
    };
    REQUIRE(eventually(both_run));
  }  // the connection closes
  CHECK(eventually([] {
    return run_process({"/usr/bin/pgrep", "-f", "^sleep 100[01]$"}).exit_code == 1;
  }));

  // The sandbox still runs its agent; stop it.
  control::Request shutdown;
  shutdown.op = control::Op::kShutdown;
  REQUIRE(ask(socket, shutdown).ok());
  int wstatus = 0;
  REQUIRE(::waitpid(supervisor, &wstatus, 0) == supervisor);
  CHECK(WEXITSTATUS(wstatus) == 128 + SIGTERM);
}

TEST_CASE("--status-fd reports launched and the exit; --log keeps stderr the agent's") {
  TempDir dir;
  const std::string policy = dir.write("p.toml", test_policy());
  const std::string status = dir.path() + "/status";
  const std::string log = dir.path() + "/supervisor.log";
  // The supervisor with the status pipe as its fd 3, running `command` (a shell line).
  auto run_with_status = [&](const std::string& command) {
    return run_process({"/bin/sh", "-c",
                        "exec \"$0\" run --policy-file \"$1\" --status-fd 3 --log \"$2\" -- " +
                            command + " 3>\"$3\"",
                        supervisor_bin(), policy, log, status});
  };
  auto r = run_with_status("/bin/sh -c 'echo to-stderr >&2; exit 3'");
  CHECK(r.exit_code == 3);
  // "launched PID": the supervisor names itself (a systemd unit's daemon learns its pid so).
  const std::string said = read_text(status);
  CHECK(said.starts_with("launched "));
  CHECK(said.ends_with("\nexit 3\n"));
  CHECK(std::atoi(said.c_str() + 9) > 1);
  CHECK(r.err == "to-stderr\n");  // the agent's; our own lines go to the log
  // A command that cannot start: no "launched", and the reason in the log.
  auto missing = run_with_status("/no/such/command");
  CHECK(missing.exit_code == 127);
  CHECK(read_text(status) == "exit 127\n");
  CHECK(missing.err.empty());
  CHECK(read_text(log).find("/no/such/command") != std::string::npos);
}

TEST_CASE("--status-fd 0 (a unit's stdin) leaves stdio: the agent cannot write a status") {
  TempDir dir;
  const std::string policy = dir.write("p.toml", test_policy());
  const std::string status = dir.path() + "/status";
  const std::string log = dir.path() + "/supervisor.log";
  // The agent writes a forged "exit 0" on its own stdin: /dev/null, not the channel.
  auto r = run_process({"/bin/sh", "-c",
                        "exec \"$0\" run --policy-file \"$1\" --status-fd 0 --log \"$2\" -- "
                        "/bin/sh -c 'echo exit 0 >&0; exit 4' 0<>\"$3\"",
                        supervisor_bin(), policy, log, status});
  CHECK(r.exit_code == 4);
  const std::string said = read_text(status);
  CHECK(said.starts_with("launched "));
  CHECK(said.ends_with("\nexit 4\n"));
  CHECK(said.find("exit 0") == std::string::npos);
}
