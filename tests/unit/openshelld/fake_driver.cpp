#include "fake_driver.hpp"

#include <algorithm>
#include <fstream>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "core/control.hpp"
#include "sys/file_util.hpp"
#include "sys/unix_socket.hpp"

namespace openshell::daemon::testing {
namespace {

void say(int fd, const std::string& line) { (void)sys::write_no_sigpipe(fd, line + "\n"); }

std::string option(const std::vector<std::string>& args, const std::string& name) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == name) return args[i + 1];
  return "";
}

// The forked "supervisor": never returns.
[[noreturn]] void fake_supervisor(const Launch& launch, int status, int hold) {
  const auto& command = launch.command;
  const std::string what = command.empty() ? "sleep" : command.front();
  if (what == "fail") {
    say(status, "exit 125");
    ::_exit(125);
  }
  if (what == "missing") {
    say(status, "exit 127");
    ::_exit(127);
  }
  // The providers and routes the manager sends, as received, a JSON line each: at start (down
  // the status channel) and in every services_update, in <events file>.services.
  const std::string services_log = option(launch.args, "--events") + ".services";
  const auto record = [&services_log](const std::string& line) {
    std::ofstream(services_log, std::ios::app) << line << "\n";
  };
  if (std::find(launch.args.begin(), launch.args.end(), "--services-on-status") !=
      launch.args.end()) {
    unsigned char length[4];
    if (::read(status, length, 4) != 4) ::_exit(124);
    std::string text((size_t{length[0]} << 24) | (size_t{length[1]} << 16) |
                         (size_t{length[2]} << 8) | length[3],
                     '\0');
    for (size_t got = 0; got < text.size();) {
      const ssize_t n = ::read(status, text.data() + got, text.size() - got);
      if (n <= 0) ::_exit(124);
      got += static_cast<size_t>(n);
    }
    record(text);
  }
  if (hold >= 0) {
    char c;
    (void)!::read(hold, &c, 1);
  }
  auto listener = sys::listen_seqpacket(option(launch.args, "--control"), 0600);
  if (!listener) ::_exit(124);
  say(status, "launched " + std::to_string(::getpid()));
  if (what == "exit") {
    const int code = command.size() > 1 ? std::atoi(command[1].c_str()) : 0;
    say(status, "exit " + std::to_string(code));
    ::_exit(code);
  }
  for (;;) {
    const int client = ::accept4(listener->fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    auto message = sys::receive_message(client, control::kMaxFrame, control::kMaxFds);
    if (message && message->has_value()) {
      auto request = control::parse_request((*message)->frame);
      if (request && request->op == control::Op::kServicesUpdate) record(request->services.dump());
      control::Reply reply;
      reply.ok = request.ok();
      const std::string frame = control::encode_reply(reply);
      (void)sys::send_message(client, frame.data(), frame.size(), {});
      if (request && request->op == control::Op::kShutdown) {
        say(status, "exit 143");
        ::_exit(143);
      }
    }
    ::close(client);
  }
}

}  // namespace

FakeWorld::~FakeWorld() {
  for (const auto& [name, pid] : started) {
    (void)name;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  for (const auto& [name, fd] : holds) ::close(fd);
}

void FakeDriver::hold(const std::string& sandbox) { world_->holds[sandbox] = -1; }

void FakeDriver::release(const std::string& sandbox) {
  auto it = world_->holds.find(sandbox);
  if (it == world_->holds.end()) return;
  if (it->second >= 0) {
    (void)!::write(it->second, "x", 1);
    ::close(it->second);
  }
  world_->holds.erase(it);
}

Result<sys::ProcessHandle> FakeDriver::start(Launch launch, std::function<void(Error)>) {
  int hold[2] = {-1, -1};
  if (auto it = world_->holds.find(launch.sandbox); it != world_->holds.end()) {
    if (::pipe2(hold, O_CLOEXEC) != 0) return Error::from_errno("pipe2");
    it->second = hold[1];
  }
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork");
  if (pid == 0) fake_supervisor(launch, launch.status.get(), hold[0]);
  if (hold[0] >= 0) ::close(hold[0]);
  world_->started[launch.sandbox] = pid;
  return sys::ProcessHandle::open(pid);
}

Result<sys::ProcessHandle> FakeDriver::adopt(const std::string& sandbox, int pid) {
  auto it = world_->started.find(sandbox);
  if (it == world_->started.end() || it->second != pid)
    return Error::from_errno("not the supervisor of " + sandbox, ESRCH);
  auto process = sys::ProcessHandle::open(pid);
  if (!process) return process.error();
  if (process->ended()) return Error::from_errno("ended", ESRCH);
  return process;
}

}  // namespace openshell::daemon::testing
