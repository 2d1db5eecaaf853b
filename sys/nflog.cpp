#include "sys/nflog.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

namespace openshell::sys {
namespace {

constexpr int kAckTimeoutMs = 2000;

// One NFULNL_MSG_CONFIG request with a single attribute, acknowledged by the kernel.
Status configure(int fd, uint16_t group, uint16_t attr_type, const void* value, size_t size,
                 uint32_t seq) {
  std::array<uint8_t, 64> buf{};
  const size_t attr_len = NLA_HDRLEN + size;
  const size_t total = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)) + NLA_ALIGN(attr_len);
  if (total > buf.size()) return Error::invalid("nflog config attribute too large");
  nlmsghdr header{};
  header.nlmsg_len = static_cast<uint32_t>(total);
  header.nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  header.nlmsg_seq = seq;
  nfgenmsg gen{};
  gen.nfgen_family = AF_UNSPEC;
  gen.version = NFNETLINK_V0;
  gen.res_id = htons(group);
  nlattr attr{};
  attr.nla_len = static_cast<uint16_t>(attr_len);
  attr.nla_type = attr_type;
  std::memcpy(buf.data(), &header, sizeof header);
  std::memcpy(buf.data() + NLMSG_HDRLEN, &gen, sizeof gen);
  const size_t attr_at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
  std::memcpy(buf.data() + attr_at, &attr, sizeof attr);
  std::memcpy(buf.data() + attr_at + NLA_HDRLEN, value, size);
  if (::send(fd, buf.data(), total, 0) != static_cast<ssize_t>(total))
    return Error::from_errno("configuring nflog group " + std::to_string(group));

  // The ack (an NLMSG_ERROR with error 0) or the refusal.
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, kAckTimeoutMs) != 1)
    return Error::from_errno("waiting for the nflog ack", ETIMEDOUT);
  std::array<uint8_t, 512> reply{};
  const ssize_t n = ::recv(fd, reply.data(), reply.size(), 0);
  if (n < static_cast<ssize_t>(NLMSG_HDRLEN + sizeof(nlmsgerr)))
    return Error::from_errno("reading the nflog ack", n < 0 ? errno : EPROTO);
  nlmsghdr got{};
  std::memcpy(&got, reply.data(), sizeof got);
  if (got.nlmsg_type != NLMSG_ERROR) return Error::from_errno("unexpected nflog reply", EPROTO);
  nlmsgerr err{};
  std::memcpy(&err, reply.data() + NLMSG_HDRLEN, sizeof err);
  if (err.error != 0)
    return Error::from_errno("nflog group " + std::to_string(group) + " config", -err.error);
  return {};
}

}  // namespace

Result<UniqueFd> open_nflog(uint16_t group, uint32_t copy_bytes) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
  if (!fd) return Error::from_errno("opening a netfilter netlink socket");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
    return Error::from_errno("binding the netfilter netlink socket");
  const nfulnl_msg_config_cmd bind{NFULNL_CFG_CMD_BIND};
  if (auto st = configure(fd.get(), group, NFULA_CFG_CMD, &bind, sizeof bind, 1); !st)
    return st.error();
  nfulnl_msg_config_mode mode{};
  mode.copy_range = htonl(copy_bytes);
  mode.copy_mode = NFULNL_COPY_PACKET;
  if (auto st = configure(fd.get(), group, NFULA_CFG_MODE, &mode, sizeof mode, 2); !st)
    return st.error();
  // One message per packet, at once: the default batches up to 100 for up to a second, and a
  // sandbox that exits meanwhile would lose them.
  const uint32_t one_packet = htonl(1);
  if (auto st = configure(fd.get(), group, NFULA_CFG_QTHRESH, &one_packet, sizeof one_packet, 3);
      !st)
    return st.error();
  const int on = 1;
  // A flood of refusals must not stall the others: excess is dropped, not queued forever.
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof on);
  if (int flags_now = ::fcntl(fd.get(), F_GETFL); flags_now < 0 ||
      ::fcntl(fd.get(), F_SETFL, flags_now | O_NONBLOCK) != 0)
    return Error::from_errno("making the nflog socket non-blocking");
  return fd;
}

}  // namespace openshell::sys
