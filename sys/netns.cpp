#include "sys/netns.hpp"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace openshell::sys {

int loopback_up_in_child() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  int err = 0;
  if (::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
    err = errno;
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) err = errno;
  }
  ::close(fd);
  return err;
}

// The kernel's NLMSG_*/RTA_* macros are C casts; they are the documented way to walk netlink.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"

namespace {

// One rtnetlink request: header, fixed message, attributes. Sized for what we send.
struct Request {
  nlmsghdr header;
  char payload[256];
};

void add_attr(Request& req, uint16_t type, const void* data, size_t len) {
  auto* rta =
      reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(req.header.nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(rta), data, len);
  req.header.nlmsg_len = NLMSG_ALIGN(req.header.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

// Sends one request and waits for its acknowledgement.
Status talk(int fd, Request& req, const char* what) {
  static uint32_t seq = 0;
  req.header.nlmsg_seq = ++seq;
  req.header.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &req, req.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0)
    return Error::from_errno(std::string("rtnetlink send: ") + what);
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(std::string("rtnetlink receive: ") + what);
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != req.header.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR) continue;
      const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      if (e->error == 0) return {};
      return Error::from_errno(what, -e->error);
    }
  }
}

}  // namespace

Status set_default_congestion_control(std::string_view algorithm) {
  // /proc/sys/net shows the namespace of the thread that opens it.
  constexpr const char* kPath = "/proc/sys/net/ipv4/tcp_congestion_control";
  UniqueFd fd(::open(kPath, O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(std::string("opening ") + kPath);
  if (::write(fd.get(), algorithm.data(), algorithm.size()) !=
      static_cast<ssize_t>(algorithm.size()))
    return Error::from_errno("setting " + std::string(kPath) + " to " + std::string(algorithm));
  return {};
}

Status add_capture_routes(const std::array<uint8_t, 4>& v4_address) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return Error::from_errno("opening rtnetlink socket");
  const int lo = static_cast<int>(::if_nametoindex("lo"));
  if (lo == 0) return Error::from_errno("finding lo");

  {
    Request req{};
    req.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
    req.header.nlmsg_type = RTM_NEWADDR;
    req.header.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    auto* ifa = static_cast<ifaddrmsg*>(NLMSG_DATA(&req.header));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = 32;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = static_cast<unsigned>(lo);
    add_attr(req, IFA_LOCAL, v4_address.data(), 4);
    add_attr(req, IFA_ADDRESS, v4_address.data(), 4);
    if (auto st = talk(fd.get(), req, "adding the sandbox address to lo"); !st) return st;
  }
  for (const unsigned char family : {AF_INET, AF_INET6}) {
    Request req{};
    req.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
    req.header.nlmsg_type = RTM_NEWROUTE;
    req.header.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    auto* rt = static_cast<rtmsg*>(NLMSG_DATA(&req.header));
    rt->rtm_family = family;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_STATIC;
    rt->rtm_scope = RT_SCOPE_LINK;
    rt->rtm_type = RTN_UNICAST;
    add_attr(req, RTA_OIF, &lo, sizeof lo);
    if (auto st = talk(
            fd.get(), req,
            family == AF_INET ? "adding the IPv4 default route" : "adding the IPv6 default route");
        !st)
      return st;
  }
  return {};
}

#pragma GCC diagnostic pop

Result<NetnsGuard> NetnsGuard::enter(int target_netns_fd) {
  UniqueFd original(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!original) return Error::from_errno("opening our network namespace");
  if (::setns(target_netns_fd, CLONE_NEWNET) != 0)
    return Error::from_errno("entering the sandbox's network namespace");
  return NetnsGuard(std::move(original));
}

NetnsGuard::~NetnsGuard() {
  // Failing to return would leave this thread's later sockets in the sandbox: never continue.
  if (original_ && ::setns(original_.get(), CLONE_NEWNET) != 0) std::abort();
}

bool is_netns(int fd) { return ::ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET; }

}  // namespace openshell::sys
