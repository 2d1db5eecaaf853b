#include "supervisor/launch/network.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <future>

#include "sys/netns.hpp"
#include "sys/nft.hpp"

namespace openshell::supervisor {

std::string capture_ruleset() {
  const std::string addr = kSandboxAddressText;
  const std::string proxy = std::to_string(kTransparentPort);
  const std::string explicit_proxy = std::to_string(kExplicitProxyPort);
  const std::string dns = std::to_string(kDnsPort);
  // Output hook only: every packet here was sent by a process in the sandbox. NAT first
  // (priority -100), then the filter sees the rewritten destination.
  return "table inet openshell {\n"
         "  chain capture {\n"
         "    type nat hook output priority -100; policy accept;\n"
         "    ip daddr 127.0.0.0/8 return\n"
         "    ip daddr " +
         addr +
         " return\n"
         "    meta l4proto tcp dnat ip to " +
         addr + ":" + proxy +
         "\n"
         "    meta l4proto udp udp dport 53 dnat ip to " +
         addr + ":" + dns +
         "\n"
         "  }\n"
         "  chain egress {\n"
         "    type filter hook output priority 0; policy accept;\n"
         "    ct state established,related accept\n"
         "    ip daddr 127.0.0.0/8 accept\n"
         "    ip6 daddr ::1 accept\n"
         "    ip daddr " +
         addr + " tcp dport { " + explicit_proxy + ", " + proxy +
         " } accept\n"
         "    ip daddr " +
         addr + " udp dport " + dns +
         " accept\n"
         // Refused, not dropped: the agent learns at once instead of waiting for a timeout.
         "    meta l4proto tcp reject with tcp reset\n"
         "    reject with icmpx admin-prohibited\n"
         "  }\n"
         "}\n";
}

std::unique_ptr<SandboxNetwork> SandboxNetwork::start() {
  std::unique_ptr<SandboxNetwork> net(new SandboxNetwork());
  std::promise<int> created;
  net->created_ = created.get_future();
  SandboxNetwork* self = net.get();
  // unshare(CLONE_NEWNET) moves only the calling thread; the thread ends inside the new
  // namespace, which lives on through the fd it hands back.
  net->thread_ = std::thread([self, created = std::move(created)]() mutable {
    if (::unshare(CLONE_NEWNET) != 0) {
      const int err = errno;
      self->status_ = Error::from_errno("creating the network namespace", err);
      created.set_value(-err);
      return;
    }
    const int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int err = errno;
    created.set_value(fd >= 0 ? fd : -err);
    if (fd < 0) {
      self->status_ = Error::from_errno("opening the network namespace", err);
    } else if (int lo_err = sys::loopback_up_in_child(); lo_err != 0) {
      self->status_ = Error::from_errno("bringing up lo", lo_err);
    } else if (auto st = sys::add_capture_routes(kSandboxAddress); !st) {
      self->status_ = st;
    } else {
      self->status_ = sys::nft_apply(capture_ruleset());
    }
  });
  return net;
}

Result<int> SandboxNetwork::netns_fd() {
  if (!netns_ && created_.valid()) {
    const int fd = created_.get();
    if (fd < 0) return Error::from_errno("creating the sandbox's network namespace", -fd);
    netns_.reset(fd);
  }
  if (!netns_) return Error::invalid("the sandbox's network namespace does not exist");
  return netns_.get();
}

Status SandboxNetwork::wait_configured() {
  if (thread_.joinable()) thread_.join();
  if (!status_) return status_.error().wrap("setting up the sandbox's network");
  return {};
}

SandboxNetwork::~SandboxNetwork() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace openshell::supervisor
