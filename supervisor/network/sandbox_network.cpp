#include "supervisor/network/sandbox_network.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <future>

#include "core/log.hpp"
#include "sys/netns.hpp"
#include "sys/nflog.hpp"
#include "sys/nft.hpp"

namespace openshell::supervisor {
namespace {

// Every TCP connection in a sandbox's namespace ends on this host: the agent and the proxy, or
// the agent and itself. There is no wire and no queue for a congestion control to pace against,
// and a host default that paces (BBR, common) arms a timer for every burst, which cost a CONNECT
// tunnel a quarter of its throughput (bench/README.md). Reno, built into every kernel, does not
// pace. Set before the listeners and the agent make their sockets. Not fatal: with a read-only
// /proc/sys the sandbox works, only slower.
void use_unpaced_tcp() {
  if (auto st = sys::set_default_congestion_control("reno"); !st)
    log::warn("network", st.error().message() +
                             ": the sandbox's TCP keeps the host's congestion control (slower if "
                             "it paces)");
}

}  // namespace

std::unique_ptr<SandboxNetwork> SandboxNetwork::start(UniqueFd prepared) {
  std::unique_ptr<SandboxNetwork> net(new SandboxNetwork());
  std::promise<int> created;
  std::promise<void> configured;
  net->created_ = created.get_future();
  net->configured_ = configured.get_future();
  SandboxNetwork* self = net.get();
  // unshare(CLONE_NEWNET) (or setns) moves only the calling thread. The thread stays in the
  // namespace for the sandbox's lifetime: later nftables updates (DNS pins, policy reloads) run
  // on it.
  net->thread_ = std::thread([self, prepared = std::move(prepared), created = std::move(created),
                              configured = std::move(configured)]() mutable {
    const bool given = static_cast<bool>(prepared);
    const int fd = self->enter(std::move(prepared));
    created.set_value(fd);
    if (fd >= 0) {
      use_unpaced_tcp();
      self->status_ = given ? self->open_listeners() : self->configure();
    }
    const bool ok = fd >= 0 && self->status_.ok();
    configured.set_value();
    if (!ok) return;
    if (given) self->load_nft();  // for later updates, while the agent starts
    self->serve();
  });
  return net;
}

int SandboxNetwork::enter(UniqueFd given) {
  if (given) {
    // Not the namespace we are in already (the host's, by mistake): the agent would run with
    // its egress uncaptured.
    struct stat ours {};
    struct stat theirs {};
    if (::fstat(given.get(), &theirs) != 0 || ::stat("/proc/thread-self/ns/net", &ours) != 0) {
      const int err = errno;
      status_ = Error::from_errno("checking the given network namespace", err);
      return -err;
    }
    if (ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino) {
      status_ = Error::invalid("the given network namespace is the supervisor's own");
      return -EINVAL;
    }
    if (::setns(given.get(), CLONE_NEWNET) != 0) {
      const int err = errno;
      status_ = Error::from_errno("entering the given network namespace", err);
      return -err;
    }
    return given.release();
  }
  if (::unshare(CLONE_NEWNET) != 0) {
    const int err = errno;
    status_ = Error::from_errno("creating the network namespace", err);
    return -err;
  }
  const int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    status_ = Error::from_errno("opening the network namespace", err);
    return -err;
  }
  return fd;
}

Status SandboxNetwork::configure() {
  auto nft = sys::Nft::open();
  if (!nft) return nft.error();
  nft_.emplace(std::move(*nft));
  if (auto st = sys::set_up_capture(*nft_, kSandboxAddress, capture::ruleset()); !st) return st;
  return open_listeners();
}

void SandboxNetwork::load_nft() {
  auto nft = sys::Nft::open();
  if (nft)
    nft_.emplace(std::move(*nft));
  else
    log::error("network", nft.error().message() +
                              ": the sandbox's firewall cannot change (no new DNS pins, no "
                              "policy address updates)");
}

Status SandboxNetwork::apply_inside(std::string commands) {
  return run_inside([this, commands = std::move(commands)]() -> Status {
    if (!nft_) return Error::invalid("nftables is not available in the sandbox's namespace");
    return nft_->apply(commands);
  });
}

void SandboxNetwork::serve() {
  for (;;) {
    std::packaged_task<Status()> task;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

Status SandboxNetwork::run_inside(std::function<Status()> task) {
  std::packaged_task<Status()> packaged(std::move(task));
  auto result = packaged.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !status_.ok()) return Error::invalid("the sandbox's network is not running");
    tasks_.push_back(std::move(packaged));
  }
  wake_.notify_one();
  return result.get();
}

Status SandboxNetwork::add_pinned(const std::vector<IpAddress>& addresses) {
  std::lock_guard lock(pinned_mu_);
  std::vector<uint32_t> fresh;
  std::string elements;
  for (const auto& ip : addresses) {
    if (ip.v6) continue;  // the sandbox's DNS hands out IPv4 only
    uint32_t key;
    std::memcpy(&key, ip.bytes.data(), sizeof key);
    if (pinned_.contains(key) || std::find(fresh.begin(), fresh.end(), key) != fresh.end())
      continue;
    fresh.push_back(key);
    elements += (elements.empty() ? "" : ", ") + to_string(ip);
  }
  if (fresh.empty()) return {};
  if (pinned_.size() + fresh.size() > kMaxPinned)
    return Error::invalid("the sandbox's firewall holds " + std::to_string(pinned_.size()) +
                          " pinned addresses, its limit is " + std::to_string(kMaxPinned));
  const std::string cmd = "add element inet openshell pinned4 { " + elements + " }\n";
  auto st = apply_inside(cmd);
  if (st) pinned_.insert(fresh.begin(), fresh.end());
  return st;
}

Status SandboxNetwork::set_policy_destinations(const std::vector<Cidr>& blocks) {
  std::string cmd = "flush set inet openshell policy4\n";
  std::string elements;
  for (const auto& block : blocks) {
    if (block.v6) continue;
    elements += (elements.empty() ? "" : ", ") + to_string(block);
  }
  if (!elements.empty()) cmd += "add element inet openshell policy4 { " + elements + " }\n";
  // The same set again (most reloads change names, not addresses): no commit. A first command
  // in a context costs its cache (~2 ms, and 50 sandboxes take a reload at once).
  std::lock_guard lock(policy_elements_mu_);
  if (elements == policy_elements_) return {};
  auto st = apply_inside(cmd);
  if (st) policy_elements_ = std::move(elements);
  return st;
}

namespace {

Result<UniqueFd> bound_socket(int type, uint16_t port) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::from_errno("socket");
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  std::memcpy(&addr.sin_addr, kSandboxAddress.data(), 4);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Error::from_errno("binding " + std::string(kSandboxAddressText) + ":" +
                             std::to_string(port));
  if (type == SOCK_STREAM && ::listen(fd.get(), 128) != 0)
    return Error::from_errno("listening on port " + std::to_string(port));
  return fd;
}

}  // namespace

Status SandboxNetwork::open_listeners() {
  auto explicit_proxy = bound_socket(SOCK_STREAM, kExplicitProxyPort);
  if (!explicit_proxy) return explicit_proxy.error();
  auto transparent = bound_socket(SOCK_STREAM, kTransparentPort);
  if (!transparent) return transparent.error();
  auto dns = bound_socket(SOCK_DGRAM, kDnsPort);
  if (!dns) return dns.error();
  listeners_.explicit_proxy = std::move(*explicit_proxy);
  listeners_.transparent = std::move(*transparent);
  listeners_.dns = std::move(*dns);
  listeners_.diag.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!listeners_.diag) return Error::from_errno("opening sock_diag");
  // Without it, refused packets are still refused, only not reported.
  if (auto refused = sys::open_nflog(kRefusedLogGroup, kRefusedLogBytes); refused)
    listeners_.refused_log = std::move(*refused);
  else
    log::warn("network", refused.error().message() + ": refused packets will not be reported");
  return {};
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
  if (configured_.valid()) configured_.get();
  if (!status_) return status_.error().wrap("setting up the sandbox's network");
  return {};
}

SandboxNetwork::~SandboxNetwork() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace openshell::supervisor
