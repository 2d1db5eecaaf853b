#include "supervisor/proxy/connect_tracker.hpp"

#include <linux/seccomp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "core/log.hpp"
#include "supervisor/proxy/identity.hpp"

namespace openshell::supervisor::proxy {
namespace {

constexpr std::string_view kComponent = "connect-tracker";

// "socket:[12345]" -> 12345.
std::optional<std::uint64_t> socket_inode(std::string_view link) {
  constexpr std::string_view kPrefix = "socket:[";
  if (link.size() <= kPrefix.size() + 1 || link.substr(0, kPrefix.size()) != kPrefix ||
      link.back() != ']')
    return std::nullopt;
  const std::string_view digits = link.substr(kPrefix.size(), link.size() - kPrefix.size() - 1);
  std::uint64_t inode = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), inode);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return inode;
}

// The kernel's notification structures may be larger than this build's headers say.
struct Buffers {
  std::vector<std::uint64_t> request;   // u64 storage keeps seccomp_notif aligned
  std::vector<std::uint64_t> response;
};

Result<Buffers> notification_buffers() {
  seccomp_notif_sizes sizes{};
  if (::syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0)
    return Error::from_errno("SECCOMP_GET_NOTIF_SIZES");
  auto words = [](size_t bytes) { return (bytes + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t); };
  Buffers b;
  b.request.resize(words(std::max<size_t>(sizes.seccomp_notif, sizeof(seccomp_notif))));
  b.response.resize(words(std::max<size_t>(sizes.seccomp_notif_resp, sizeof(seccomp_notif_resp))));
  return b;
}

}  // namespace

Result<std::unique_ptr<ConnectTracker>> ConnectTracker::start(UniqueFd listener,
                                                              pid_t sandbox_init) {
  if (!listener) return Error::invalid("no connect listener");
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) return Error::from_errno("eventfd for the connect tracker");
  // Checked here, where a failure can still be reported, rather than on the thread.
  if (auto buffers = notification_buffers(); !buffers) return buffers.error();
  return std::unique_ptr<ConnectTracker>(
      new ConnectTracker(std::move(listener), std::move(stop), sandbox_init));
}

ConnectTracker::ConnectTracker(UniqueFd listener, UniqueFd stop, pid_t sandbox_init)
    : listener_(std::move(listener)),
      stop_(std::move(stop)),
      sandbox_init_(sandbox_init),
      thread_([this] { run(); }) {}

ConnectTracker::~ConnectTracker() {
  const std::uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

std::optional<ConnectRecord> ConnectTracker::find(std::uint64_t inode) const {
  std::lock_guard lock(mu_);
  auto it = by_inode_.find(inode);
  if (it == by_inode_.end()) return std::nullopt;
  return it->second;
}

std::uint64_t ConnectTracker::seen() const {
  std::lock_guard lock(mu_);
  return seen_;
}

std::uint64_t ConnectTracker::recorded() const {
  std::lock_guard lock(mu_);
  return recorded_;
}

void ConnectTracker::record(std::uint64_t inode, ConnectRecord entry) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = by_inode_.insert_or_assign(inode, std::move(entry));
  (void)it;
  if (inserted) order_.push_back(inode);
  ++recorded_;
  while (by_inode_.size() > kCapacity && !order_.empty()) {
    by_inode_.erase(order_.front());
    order_.pop_front();
  }
}

void ConnectTracker::run() {
  auto buffers = notification_buffers();
  if (!buffers) return;  // start() checked it; the kernel cannot have changed its mind
  auto* request = reinterpret_cast<seccomp_notif*>(buffers->request.data());
  auto* response = reinterpret_cast<seccomp_notif_resp*>(buffers->response.data());
  const int listener = listener_.get();
  for (;;) {
    pollfd fds[2] = {{listener, POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::error(kComponent, std::string("poll: ") + std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & (POLLHUP | POLLERR)) != 0 && (fds[0].revents & POLLIN) == 0)
      return;  // every task that could notify is gone
    std::memset(buffers->request.data(), 0, buffers->request.size() * sizeof(std::uint64_t));
    if (::ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, request) != 0) {
      // ENOENT: the task went away before we read its notification.
      if (errno != EINTR && errno != ENOENT)
        log::warn(kComponent, std::string("receiving a notification: ") + std::strerror(errno));
      continue;
    }
    {
      std::lock_guard lock(mu_);
      ++seen_;
    }
    // Read while the task waits in connect(2): the descriptor is its argument, the chain what
    // the process is now. Nothing the task controls is trusted beyond picking the descriptor.
    const auto pid = static_cast<pid_t>(request->pid);
    const auto fd = static_cast<int>(request->data.args[0]);
    if (fd >= 0) {
      const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
      char link[64];
      const ssize_t n = ::readlink(path.c_str(), link, sizeof link);
      auto inode = n > 0 ? socket_inode(std::string_view(link, static_cast<size_t>(n)))
                         : std::nullopt;
      if (inode) {
        auto chain = exe_chain(pid, sandbox_init_);
        // Still the same waiting task: its pid was not recycled while we read /proc.
        std::uint64_t id = request->id;
        if (chain && ::ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0)
          record(*inode, ConnectRecord{pid, fd, std::move(*chain)});
      }
    }
    std::memset(buffers->response.data(), 0, buffers->response.size() * sizeof(std::uint64_t));
    response->id = request->id;
    response->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    if (::ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, response) != 0 && errno != ENOENT)
      log::warn(kComponent, std::string("answering a notification: ") + std::strerror(errno));
  }
}

}  // namespace openshell::supervisor::proxy
