#include "ctl/tty_session.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <systemd/sd-bus.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>

#include "core/unique_fd.hpp"
#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace openshell::ctl {
namespace {

// Input read ahead of what the pty takes: stdin is not read while this much waits.
constexpr size_t kMaxPending = 64 << 10;
// After the command ended: output still coming from its pty is relayed until this much quiet
// (a background child may keep the pty open for ever).
constexpr int kDrainQuietMs = 200;

// This terminal in raw mode (every key goes to the sandbox, ^C included) for its lifetime.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) {
    if (::isatty(fd) == 0 || ::tcgetattr(fd, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    if (::tcsetattr(fd, TCSANOW, &raw) == 0) fd_ = fd;
  }
  ~RawTerminal() {
    if (fd_ >= 0) (void)::tcsetattr(fd_, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_ = -1;
  termios saved_{};
};

// SIGWINCH through a descriptor, the old mask back at the end.
class WindowChanges {
 public:
  WindowChanges() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGWINCH);
    if (::sigprocmask(SIG_BLOCK, &set, &old_) == 0)
      fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  }
  ~WindowChanges() {
    fd_.reset();
    (void)::sigprocmask(SIG_SETMASK, &old_, nullptr);
  }
  WindowChanges(const WindowChanges&) = delete;
  WindowChanges& operator=(const WindowChanges&) = delete;
  [[nodiscard]] int fd() const { return fd_.get(); }
  void drain() const {
    signalfd_siginfo info;
    while (::read(fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    }
  }

 private:
  UniqueFd fd_;
  sigset_t old_{};
};

// Our terminal's size onto the pty (the kernel then sends SIGWINCH to its foreground group).
void copy_window_size(int pty_master) {
  winsize ws{};
  for (int fd : {STDIN_FILENO, STDOUT_FILENO})
    if (::ioctl(fd, TIOCGWINSZ, &ws) == 0) {
      (void)::ioctl(pty_master, TIOCSWINSZ, &ws);
      return;
    }
}

bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

struct CallState {
  bool done = false;
  int code = kExitFailed;
  std::optional<Error> error;
};

int on_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
  auto* state = static_cast<CallState*>(userdata);
  state->done = true;
  if (sd_bus_message_is_method_error(m, nullptr) != 0) {
    const sd_bus_error* e = sd_bus_message_get_error(m);
    state->error = e != nullptr ? call_error(*e, -EIO) : Error::invalid("exec failed");
  } else if (int code = 0; sd_bus_message_read(m, "i", &code) < 0) {
    state->error = Error::invalid("unexpected reply to ExecTty");
  } else {
    state->code = code;
  }
  return 0;
}

// sd-bus's next timeout as a poll(2) timeout, -1 for none.
int bus_timeout_ms(sd_bus* bus) {
  uint64_t at = 0;
  if (sd_bus_get_timeout(bus, &at) <= 0 || at == UINT64_MAX) return -1;
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t now_us =
      static_cast<uint64_t>(now.tv_sec) * 1000000U + static_cast<uint64_t>(now.tv_nsec) / 1000U;
  return at <= now_us ? 0 : static_cast<int>(std::min<uint64_t>((at - now_us + 999) / 1000, 60000));
}

// Until the command has ended and its pty has gone quiet: keys to the pty, its output to ours.
void relay(sd_bus* bus, int master, CallState& state) {
  WindowChanges winch;
  (void)::fcntl(master, F_SETFL, O_NONBLOCK);
  RawTerminal raw(STDIN_FILENO);
  std::string pending;  // read from stdin, not yet taken by the pty
  bool stdin_open = true;
  bool master_open = true;
  char buf[16384];
  for (;;) {
    if (state.done && !master_open) break;
    pollfd fds[4] = {
        {stdin_open && pending.size() < kMaxPending ? STDIN_FILENO : -1, POLLIN, 0},
        {master_open ? master : -1,
         static_cast<short>(POLLIN | (pending.empty() ? 0 : POLLOUT)), 0},
        {sd_bus_get_fd(bus), static_cast<short>(sd_bus_get_events(bus)), 0},
        {winch.fd(), POLLIN, 0},
    };
    const int timeout = state.done ? kDrainQuietMs : bus_timeout_ms(bus);
    const int n = ::poll(fds, 4, timeout);
    if (n < 0 && errno != EINTR) break;
    if (n == 0 && state.done) break;  // quiet after the end
    if ((fds[3].revents & POLLIN) != 0) {
      winch.drain();
      copy_window_size(master);
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
      if (got > 0) {
        pending.append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        // End of our input: the terminal's end-of-file character tells the command.
        stdin_open = false;
        pending.push_back('\x04');
      }
    }
    if ((fds[1].revents & POLLOUT) != 0 && !pending.empty()) {
      const ssize_t put = ::write(master, pending.data(), pending.size());
      if (put > 0) pending.erase(0, static_cast<size_t>(put));
    }
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t got = ::read(master, buf, sizeof buf);
      if (got > 0) {
        if (!write_all(STDOUT_FILENO, buf, static_cast<size_t>(got))) stdin_open = false;
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        master_open = false;  // EIO: every holder of the slave is gone
      }
    }
    int processed;
    while ((processed = sd_bus_process(bus, nullptr)) > 0) {
    }
    if (processed < 0 && !state.done) {
      state.done = true;
      state.error = Error::invalid(std::string("the bus went away: ") + std::strerror(-processed));
    }
  }
}

}  // namespace

int run_on_pty(sd_bus* bus, const std::string& sandbox, const std::vector<std::string>& argv,
               const std::vector<std::string>& env, const std::string& cwd) {
  // The pty is the sandbox's own (its devpts), so the command's terminal has a name in there;
  // the slave is opened from the master, without a path that would have to exist here.
  auto opened = call(bus, "OpenPty",
                     [&](sd_bus_message* m) { return sd_bus_message_append(m, "s", sandbox.c_str()); });
  if (!opened) return fail(opened.error().message());
  int passed = -1;
  if (sd_bus_message_read(opened->get(), "h", &passed) < 0) return fail("unexpected reply to OpenPty");
  UniqueFd master_fd(::fcntl(passed, F_DUPFD_CLOEXEC, 3));
  if (!master_fd) return fail(std::string("taking the pty: ") + std::strerror(errno));
  const int master = master_fd.get();
  UniqueFd slave(::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) return fail(std::string("opening the pty's slave: ") + std::strerror(errno));
  copy_window_size(master);

  auto request = new_call(bus, "ExecTty");
  if (!request) return fail(request.error().message());
  int rc = sd_bus_message_append(request->get(), "s", sandbox.c_str());
  if (rc >= 0) rc = append_strings(request->get(), argv);
  if (rc >= 0) rc = append_strings(request->get(), env);
  if (rc >= 0) rc = sd_bus_message_append(request->get(), "sh", cwd.c_str(), slave.get());
  CallState state;
  sd_bus_slot* slot = nullptr;
  if (rc >= 0) rc = sd_bus_call_async(bus, &slot, request->get(), on_reply, &state, UINT64_MAX);
  const BusSlot held(slot);  // the reply's callback goes with it
  if (rc >= 0) rc = sd_bus_flush(bus);
  if (rc < 0) return fail(std::string("sending ExecTty: ") + std::strerror(-rc));
  slave.reset();  // on its way: the sandbox's copy is the one that counts

  relay(bus, master, state);
  if (state.error) return fail_command(*state.error);  // 1, or a shell's 126/127
  return state.code;
}

}  // namespace openshell::ctl
