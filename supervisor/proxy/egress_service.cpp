#include <utility>  // before Asio (see server.cpp)

#include "supervisor/proxy/egress_service.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <span>

#include "core/capture.hpp"
#include "core/host_glob.hpp"
#include "core/log.hpp"
#include "core/net_guard.hpp"
#include "core/nflog.hpp"

namespace openshell::supervisor::proxy {
namespace {

// One nflog datagram at most (a message per packet, its payload cut at kRefusedLogBytes).
constexpr size_t kRefusedBufBytes = 65536;

}  // namespace

std::shared_ptr<const policy::Policy> prepare_policy(const policy::Policy& policy) {
  auto prepared = std::make_shared<policy::Policy>(policy);
  for (auto& [name, rule] : prepared->network_policies) {
    std::vector<policy::Binary> resolved;
    for (const auto& binary : rule.binaries) {
      if (binary.path.find_first_of("*?[") != std::string::npos) continue;
      char real[PATH_MAX];
      if (::realpath(binary.path.c_str(), real) != nullptr && binary.path != real)
        resolved.push_back({real, binary.pos});
    }
    rule.binaries.insert(rule.binaries.end(), resolved.begin(), resolved.end());
  }
  return prepared;
}

bool name_allowed(const policy::Policy& policy, const std::string& name) {
  auto checked = net::check_host(name);
  if (checked.form != net::HostForm::kName || net::is_blocked_name(checked.host)) return false;
  for (const auto& [rule_name, rule] : policy.network_policies)
    for (const auto& endpoint : rule.endpoints) {
      if (!endpoint.host) continue;
      auto pattern = policy::HostPattern::parse(*endpoint.host);
      if (pattern.ok() && pattern->matches(checked.host)) return true;
    }
  return false;
}

std::vector<Cidr> policy_destinations(const policy::Policy& policy) {
  std::vector<Cidr> out;
  for (const auto& [name, rule] : policy.network_policies)
    for (const auto& endpoint : rule.endpoints) {
      if (endpoint.host)
        if (auto literal = parse_cidr(*endpoint.host); literal.ok() && !literal->v6)
          out.push_back(*literal);
      for (const auto& block : endpoint.allowed_ips)
        if (!block.v6) out.push_back(block);
    }
  return out;
}

EgressService::EgressService(boost::asio::io_context& io, std::string sandbox,
                             std::shared_ptr<const policy::Policy> policy, EventSink& events,
                             pid_t sandbox_init, std::string procs_file, StaticHosts static_hosts,
                             Sockets sockets, SandboxNetwork& network, Inspection inspection)
    : policy_(std::move(policy)),
      services_(inspection.services ? std::move(inspection.services)
                                    : std::make_shared<const services::Services>()),
      network_(network),
      pins_(std::make_shared<PinTable>()),
      sandbox_(sandbox),
      events_(events) {
  static_hosts[capture::kInferenceHost] = {*parse_ip(capture::kInferenceAddressText)};
  auto hosts = std::make_shared<StaticHosts>(std::move(static_hosts));
  auto cache = std::make_shared<NameCache>();
  auto lookup = [hosts, cache](const std::string& name) -> std::optional<std::vector<IpAddress>> {
    if (auto it = hosts->find(name); it != hosts->end()) return it->second;
    return cache->find(name);
  };
  Resolve resolve = [lookup, cache](const std::string& name) -> std::vector<IpAddress> {
    if (auto known = lookup(name)) return std::move(*known);
    auto addresses = resolve_with_host(name);
    cache->store(name, addresses);
    return addresses;
  };
  // What the sandbox's DNS hands out: IPv4 only (the capture path is IPv4), and each address
  // opened in nftables before the answer leaves, so the connection that follows reaches us.
  SandboxNetwork* net = &network_;
  Resolve answer_sandbox = [resolve, net](const std::string& name) -> std::vector<IpAddress> {
    std::vector<IpAddress> v4;
    for (const auto& ip : resolve(name))
      if (!ip.v6) v4.push_back(ip);
    if (auto st = net->add_pinned(v4); !st) {
      log::warn("dns",
                "cannot open " + name + " in the sandbox's firewall: " + st.error().message());
      return {};
    }
    return v4;
  };
  // The set starts empty: only a policy that names addresses costs an nftables commit here.
  if (auto blocks = policy_destinations(*policy_); !blocks.empty())
    if (auto st = network_.set_policy_destinations(blocks); !st)
      log::warn("proxy", st.error().message());
  ProxyConfig config;
  config.sandbox = sandbox;
  config.policy = [this] { return this->policy(); };
  config.services = [this] { return this->services(); };
  config.pins = pins_;
  config.events = &events;
  config.sandbox_init = sandbox_init;
  config.procs_file = std::move(procs_file);
  config.resolve = resolve;
  config.lookup = lookup;
  config.tls = std::move(inspection.tls);
  config.upstream_proxy = std::move(inspection.upstream_proxy);
  diag_ = std::move(sockets.diag);
  config.diag_fd = diag_.get();
  if (sockets.connect_listener) {
    auto tracker = ConnectTracker::start(std::move(sockets.connect_listener), sandbox_init);
    if (tracker)
      config.tracker = std::move(*tracker);
    else
      log::warn("proxy", tracker.error().message() + "; callers are found by searching /proc");
  }
  proxy_ = std::make_shared<ProxyServer>(io, std::move(config), sockets.explicit_proxy.release(),
                                         sockets.transparent.release());
  proxy_->start();
  EventSink* sink = &events;
  dns_ = std::make_unique<DnsServer>(
      io, sockets.dns.release(),
      [this](const std::string& name) {
        return name == capture::kInferenceHost || name_allowed(*this->policy(), name);
      },
      answer_sandbox, pins_,
      [sink, sandbox](const std::string& name, uint16_t qtype) {
        sink->emit(ocsf::dns_denied(sandbox, name, qtype));
      });
  dns_->start();
  if (sockets.refused_log) {
    refused_ = std::make_unique<boost::asio::posix::stream_descriptor>(
        io, sockets.refused_log.release());
    refused_buf_ = std::make_unique_for_overwrite<uint8_t[]>(kRefusedBufBytes);
    watch_refusals();
  }
}

EgressService::~EgressService() {
  if (refused_) report_refusals();
}

void EgressService::watch_refusals() {
  refused_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [this](const boost::system::error_code& ec) {
                         if (ec) return;  // closed: the sandbox is going
                         report_refusals();
                         watch_refusals();
                       });
}

void EgressService::report_refusals() {
  for (;;) {
    const ssize_t n =
        ::recv(refused_->native_handle(), refused_buf_.get(), kRefusedBufBytes, MSG_DONTWAIT);
    if (n <= 0) {
      // ENOBUFS: the kernel dropped reports while we were busy; the packets were refused anyway.
      if (n < 0 && errno == ENOBUFS) continue;
      return;
    }
    for (const auto& p :
         nflog::parse_messages(std::span(refused_buf_.get(), static_cast<size_t>(n)))) {
      ocsf::ConnectionInfo c;
      c.address = to_string(p.dst);
      c.host = c.address;
      c.port = p.dst_port;
      c.src_address = to_string(p.src);
      c.src_port = p.src_port;
      c.protocol = nflog::protocol_name(p.protocol);
      c.mode = "raw";
      c.reason = "refused_by_firewall";
      c.detail = "the sandbox's firewall refused " + c.protocol + " to " + c.address +
                 (p.dst_port != 0 ? ":" + std::to_string(p.dst_port) : "") +
                 ": only TCP through the proxy and DNS to the policy DNS leave the sandbox" +
                 (p.uid ? " (socket uid " + std::to_string(*p.uid) + ")" : "");
      if (p.uid) c.uid = *p.uid;
      events_.emit(ocsf::bypass_finding(sandbox_, c));
    }
  }
}

void EgressService::set_policy(std::shared_ptr<const policy::Policy> policy) {
  if (auto st = network_.set_policy_destinations(policy_destinations(*policy)); !st)
    log::warn("proxy", st.error().message());
  {
    std::lock_guard lock(mu_);
    policy_ = std::move(policy);
  }
  proxy_->policy_changed();
}

void EgressService::set_services(std::shared_ptr<const services::Services> services) {
  std::lock_guard lock(mu_);
  services_ = std::move(services);
}

std::shared_ptr<const services::Services> EgressService::services() const {
  std::lock_guard lock(mu_);
  return services_;
}

std::shared_ptr<const policy::Policy> EgressService::policy() const {
  std::lock_guard lock(mu_);
  return policy_;
}

}  // namespace openshell::supervisor::proxy
