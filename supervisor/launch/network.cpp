#include "supervisor/launch/network.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <future>

#include "core/log.hpp"
#include "sys/netns.hpp"
#include "sys/nflog.hpp"
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
         // Destinations TCP may take (through the proxy): DNS answers we gave, and what the
         // policy names by address. Anything else is refused before a handshake.
         // No size: the kernel would allocate the hash for the most elements at creation (1 MiB
         // for 65536: two thirds of the kernel's part of the first commit, by perf); the set
         // grows as pins come, and add_pinned bounds it.
         "  set pinned4 { type ipv4_addr; }\n"
         "  set policy4 { type ipv4_addr; flags interval; size 4096; }\n"
         "  chain capture {\n"
         "    type nat hook output priority -100; policy accept;\n"
         "    ip daddr 127.0.0.0/8 return\n"
         "    ip daddr " +
         addr +
         " return\n"
         "    meta l4proto udp udp dport 53 dnat ip to " +
         addr + ":" + dns +
         "\n"
         "    ip daddr @pinned4 meta l4proto tcp dnat ip to " +
         addr + ":" + proxy +
         "\n"
         "    ip daddr @policy4 meta l4proto tcp dnat ip to " +
         addr + ":" + proxy +
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
         // Reported (a bypass attempt; rate-limited so a flood costs little), then refused, not
         // dropped: the agent learns at once instead of waiting for a timeout.
         "    limit rate 20/second burst 50 packets log group " +
         std::to_string(kRefusedLogGroup) +
         "\n"
         "    meta l4proto tcp reject with tcp reset\n"
         "    reject with icmpx admin-prohibited\n"
         "  }\n"
         "}\n";
}

std::unique_ptr<SandboxNetwork> SandboxNetwork::start() {
  std::unique_ptr<SandboxNetwork> net(new SandboxNetwork());
  std::promise<int> created;
  std::promise<void> configured;
  net->created_ = created.get_future();
  net->configured_ = configured.get_future();
  SandboxNetwork* self = net.get();
  // unshare(CLONE_NEWNET) moves only the calling thread. The thread stays in the namespace for
  // the sandbox's lifetime: later nftables updates (DNS pins, policy reloads) run on it.
  net->thread_ = std::thread(
      [self, created = std::move(created), configured = std::move(configured)]() mutable {
        if (::unshare(CLONE_NEWNET) != 0) {
          const int err = errno;
          self->status_ = Error::from_errno("creating the network namespace", err);
          created.set_value(-err);
          configured.set_value();
          return;
        }
        const int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        const int err = errno;
        created.set_value(fd >= 0 ? fd : -err);
        self->status_ =
            fd < 0 ? Error::from_errno("opening the network namespace", err) : self->configure();
        const bool ok = self->status_.ok();
        configured.set_value();
        if (ok) self->serve();
      });
  return net;
}

Status SandboxNetwork::configure() {
  if (int err = sys::loopback_up_in_child(); err != 0)
    return Error::from_errno("bringing up lo", err);
  if (auto st = sys::add_capture_routes(kSandboxAddress); !st) return st;
  auto nft = sys::Nft::open();
  if (!nft) return nft.error();
  nft_.emplace(std::move(*nft));
  if (auto st = nft_->apply(capture_ruleset()); !st) return st;
  return open_listeners();
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
  auto st = run_inside([this, cmd] { return nft_->apply(cmd); });
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
  auto st = run_inside([this, cmd] { return nft_->apply(cmd); });
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
