#include "supervisor/proxy/identity.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/unique_fd.hpp"
#include "supervisor/proxy/connect_tracker.hpp"
#include "sys/file_util.hpp"

namespace openshell::supervisor::proxy {
namespace {

// The sandbox's pids.max is far below this; beyond it we could not prove a single owner.
constexpr size_t kMaxPids = 65536;
// "4194304\n" is 8 bytes; leave room for whatever a future pid_max prints.
constexpr size_t kMaxProcsBytes = kMaxPids * 12;
// The nearest 64 exes are enough for any policy; a deeper tree is cut, not refused.
constexpr size_t kMaxChain = 64;
// /proc/net/tcp rows are ~150 bytes: this is several hundred thousand sockets. A sandbox that
// opens more only makes its own connections unidentifiable.
constexpr size_t kMaxTableBytes = size_t{64} << 20;
constexpr size_t kTableChunk = size_t{64} << 10;
// A parent that exits between our reads reparents its child; re-reading converges fast.
constexpr int kMaxReparentRetries = 8;

// An address in one comparable form: IPv4 as v4-mapped IPv6, so an AF_INET client, an AF_INET6
// client talking to a mapped address, and either kind of listener all compare equal.
struct Endpoint {
  std::array<std::uint8_t, 16> addr{};
  std::uint16_t port = 0;  // host order
  bool operator==(const Endpoint&) const = default;
};

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4_mapped(const Endpoint& e) {
  return std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), e.addr.begin());
}

Result<Endpoint> endpoint_of(const sockaddr_storage& ss) {
  Endpoint e;
  if (ss.ss_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, &ss, sizeof in);
    std::copy(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), e.addr.begin());
    std::memcpy(e.addr.data() + 12, &in.sin_addr, 4);
    e.port = ntohs(in.sin_port);
    return e;
  }
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &ss, sizeof in6);
    std::memcpy(e.addr.data(), &in6.sin6_addr, 16);
    e.port = ntohs(in6.sin6_port);
    return e;
  }
  return Error{std::make_error_code(std::errc::address_family_not_supported),
               "peer address family " + std::to_string(ss.ss_family)};
}

std::string to_string(const Endpoint& e) {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4_mapped(e)) {
    inet_ntop(AF_INET, e.addr.data() + 12, text, sizeof text);
    return std::string(text) + ":" + std::to_string(e.port);
  }
  inet_ntop(AF_INET6, e.addr.data(), text, sizeof text);
  return "[" + std::string(text) + "]:" + std::to_string(e.port);
}

// Client-side TCP states (include/net/tcp_states.h) in which the socket can still belong to a
// file: ESTABLISHED, FIN_WAIT1, FIN_WAIT2 (a client may half-close right after sending its
// request, before we get to look), CLOSE_WAIT, LAST_ACK, CLOSING. TIME_WAIT and orphaned
// sockets print inode 0 and are refused below anyway.
bool owned_state(unsigned state) {
  switch (state) {
    case 0x01:
    case 0x04:
    case 0x05:
    case 0x08:
    case 0x09:
    case 0x0B:
      return true;
    default:
      return false;
  }
}

std::string_view next_token(std::string_view& rest) {
  const size_t start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(start);
  const size_t end = std::min(rest.find(' '), rest.size());
  std::string_view token = rest.substr(0, end);
  rest.remove_prefix(end);
  return token;
}

template <typename T>
bool parse_number(std::string_view text, int base, T* out) {
  if (text.empty()) return false;
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), last, *out, base);
  return ec == std::errc() && ptr == last;
}

// "0100007F:0CEA" (IPv4) or 32 hex digits ":PORT" (IPv6). The kernel prints each 32-bit word of
// the address as the number it is in host memory (%08X), so reading the word back as a number
// and storing it in host order restores the original bytes on any endianness.
std::optional<Endpoint> parse_table_endpoint(std::string_view token) {
  const size_t colon = token.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view hex = token.substr(0, colon);
  Endpoint e;
  std::uint8_t* dest = e.addr.data();
  if (hex.size() == 8) {
    std::copy(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), e.addr.begin());
    dest += 12;
  } else if (hex.size() != 32) {
    return std::nullopt;
  }
  for (size_t i = 0; i < hex.size(); i += 8) {
    std::uint32_t word = 0;
    if (!parse_number(hex.substr(i, 8), 16, &word)) return std::nullopt;
    std::memcpy(dest + i / 2, &word, sizeof word);
  }
  const std::string_view port = token.substr(colon + 1);
  if (port.size() != 4 || !parse_number(port, 16, &e.port)) return std::nullopt;
  return e;
}

struct TcpRow {
  Endpoint local;
  Endpoint remote;
  unsigned state = 0;
  std::uint64_t inode = 0;
};

// "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ..."; the header and anything
// malformed yield nullopt.
std::optional<TcpRow> parse_table_row(std::string_view line) {
  std::array<std::string_view, 10> field;
  for (auto& f : field) {
    f = next_token(line);
    if (f.empty()) return std::nullopt;
  }
  TcpRow row;
  auto local = parse_table_endpoint(field[1]);
  auto remote = parse_table_endpoint(field[2]);
  if (!local || !remote) return std::nullopt;
  row.local = *local;
  row.remote = *remote;
  if (!parse_number(field[3], 16, &row.state) || !parse_number(field[9], 10, &row.inode)) {
    return std::nullopt;
  }
  return row;
}

// Streams one /proc/<pid>/net/tcp{,6} table and stops at the row for the tuple. A table that is
// missing (no IPv6 in this kernel) holds no row.
Result<std::optional<TcpRow>> find_table_row(const std::string& path, const Endpoint& local,
                                             const Endpoint& remote) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::optional<TcpRow>{};
    return Error::from_errno("opening " + path);
  }
  std::string buf(kTableChunk, '\0');
  size_t len = 0;
  size_t total = 0;
  bool eof = false;
  while (!eof) {
    const ssize_t n = ::read(fd.get(), buf.data() + len, buf.size() - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("reading " + path);
    }
    eof = n == 0;
    len += static_cast<size_t>(n);
    total += static_cast<size_t>(n);
    if (total > kMaxTableBytes) {
      return Error{std::make_error_code(std::errc::file_too_large),
                   path + " is larger than " + std::to_string(kMaxTableBytes) + " bytes"};
    }
    std::string_view pending(buf.data(), len);
    for (;;) {
      size_t nl = pending.find('\n');
      if (nl == std::string_view::npos) {
        if (!eof || pending.empty()) break;
        nl = pending.size();  // a last line without its newline
      }
      if (auto row = parse_table_row(pending.substr(0, nl));
          row && row->local == local && row->remote == remote) {
        return row;
      }
      pending.remove_prefix(std::min(nl + 1, pending.size()));
    }
    if (pending.size() == buf.size()) {
      return Error{std::make_error_code(std::errc::bad_message), "overlong line in " + path};
    }
    std::memmove(buf.data(), pending.data(), pending.size());
    len = pending.size();
  }
  return std::optional<TcpRow>{};
}

Result<std::uint64_t> find_socket_inode(pid_t sandbox_init, const Endpoint& client,
                                        const Endpoint& server) {
  const std::string base = "/proc/" + std::to_string(sandbox_init) + "/net/";
  // A v4 tuple is in tcp for an AF_INET client and in tcp6 (mapped) for an AF_INET6 one.
  std::vector<std::string> tables;
  if (is_v4_mapped(client)) tables.push_back(base + "tcp");
  tables.push_back(base + "tcp6");
  const std::string tuple = to_string(client) + " -> " + to_string(server);
  for (const auto& table : tables) {
    auto row = find_table_row(table, client, server);
    if (!row) return row.error();
    if (!row->has_value()) continue;
    const TcpRow& r = **row;
    // The tuple is unique in the namespace: a closed or orphaned client is not somewhere else.
    if (r.inode == 0 || !owned_state(r.state)) {
      return Error{std::make_error_code(std::errc::not_connected),
                   "client socket " + tuple + " is closed (state " + std::to_string(r.state) + ")"};
    }
    return r.inode;
  }
  return Error{std::make_error_code(std::errc::no_such_file_or_directory),
               "no client socket " + tuple + " in the sandbox's network namespace"};
}

// The same lookup through sock_diag: one exact request instead of reading a table that grows
// with every connection the sandbox ever made (TIME_WAIT rows included). diag_fd must have been
// opened in the sandbox's network namespace.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"  // NLMSG_* macros
Result<std::optional<std::uint64_t>> diag_inode(int diag_fd, const Endpoint& client,
                                                const Endpoint& server, bool as_v4) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } msg{};
  static std::uint32_t seq = 0;
  msg.header.nlmsg_len = sizeof msg;
  msg.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.header.nlmsg_flags = NLM_F_REQUEST;
  msg.header.nlmsg_seq = ++seq;
  msg.request.sdiag_family = as_v4 ? AF_INET : AF_INET6;
  msg.request.sdiag_protocol = IPPROTO_TCP;
  msg.request.idiag_states = ~0U;
  msg.request.id.idiag_sport = htons(client.port);
  msg.request.id.idiag_dport = htons(server.port);
  if (as_v4) {
    std::memcpy(msg.request.id.idiag_src, client.addr.data() + 12, 4);
    std::memcpy(msg.request.id.idiag_dst, server.addr.data() + 12, 4);
  } else {
    std::memcpy(msg.request.id.idiag_src, client.addr.data(), 16);
    std::memcpy(msg.request.id.idiag_dst, server.addr.data(), 16);
  }
  msg.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  if (::send(diag_fd, &msg, sizeof msg, 0) < 0) return Error::from_errno("sock_diag request");
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    ssize_t n = ::recv(diag_fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("sock_diag reply");
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != msg.header.nlmsg_seq) continue;  // a stale reply: skip it
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == -ENOENT) return std::optional<std::uint64_t>();
        return Error::from_errno("sock_diag", -e->error);
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      const auto* d = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      if (d->idiag_inode == 0 || !owned_state(d->idiag_state))
        return Error{std::make_error_code(std::errc::not_connected),
                     "client socket " + to_string(client) + " -> " + to_string(server) +
                         " is closed (state " + std::to_string(d->idiag_state) + ")"};
      return std::optional<std::uint64_t>(d->idiag_inode);
    }
  }
}
#pragma GCC diagnostic pop

Result<std::vector<pid_t>> read_pids(const std::string& procs_file) {
  auto text = sys::read_file(procs_file, kMaxProcsBytes + 1);
  if (!text) return text.error();
  if (text->size() > kMaxProcsBytes) {
    return Error{std::make_error_code(std::errc::file_too_large), procs_file + " is too large"};
  }
  std::vector<pid_t> pids;
  std::string_view rest(*text);
  while (!rest.empty()) {
    const size_t nl = std::min(rest.find('\n'), rest.size());
    const std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(std::min(nl + 1, rest.size()));
    if (line.empty()) continue;
    pid_t pid = 0;
    if (!parse_number(line, 10, &pid) || pid <= 0) {
      return Error::invalid("unexpected line in " + procs_file);
    }
    if (pids.size() == kMaxPids) {
      return Error{std::make_error_code(std::errc::argument_list_too_long),
                   procs_file + " lists more than " + std::to_string(kMaxPids) + " processes"};
    }
    pids.push_back(pid);
  }
  return pids;
}

// The process is gone (or going): its /proc entries vanish or stop answering.
bool vanished(int err) { return err == ENOENT || err == ESRCH; }

UniqueFd open_proc_dir(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid);
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// Opens a directory under a /proc/<pid> fd; errno is set when it returns null.
DirPtr open_dir_at(int dir_fd, const char* path) {
  UniqueFd fd(::openat(dir_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return nullptr;
  DIR* dir = ::fdopendir(fd.get());
  if (dir == nullptr) return nullptr;
  fd.release();  // now owned by dir
  return DirPtr(dir);
}

bool is_dot(const char* name) { return name[0] == '.'; }

// Whether an fd directory ("fd" or "task/<tid>/fd" under proc_dir) holds the link `target`.
// A vanished process holds nothing; any other failure is returned, since a directory we could
// not read may hide a second owner.
Result<bool> fd_dir_holds(int proc_dir, const std::string& sub, std::string_view target) {
  DirPtr dir = open_dir_at(proc_dir, sub.c_str());
  if (!dir) {
    if (vanished(errno)) return false;
    return Error::from_errno("opening " + sub);
  }
  char link[64];  // "socket:[<20 digits>]" fits; anything longer is not our socket
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) {
      if (errno == 0 || vanished(errno)) return false;
      return Error::from_errno("listing " + sub);
    }
    if (is_dot(entry->d_name)) continue;
    const ssize_t n = ::readlinkat(::dirfd(dir.get()), entry->d_name, link, sizeof link);
    if (n < 0) {
      if (vanished(errno)) continue;  // that fd was closed while we listed the directory
      return Error::from_errno("reading " + sub + "/" + entry->d_name);
    }
    if (std::string_view(link, static_cast<size_t>(n)) == target) return true;
  }
}

// Whether process `pid` holds the socket. /proc/<pid>/fd is the leader's fd table; a thread
// that unshared its own table (unshare(CLONE_FILES)) keeps its fds only under task/<tid>/fd,
// so such threads are scanned too. kcmp tells cheaply which threads share the leader's table.
Result<bool> process_holds(int proc_dir, pid_t pid, std::string_view target) {
  auto in_leader = fd_dir_holds(proc_dir, "fd", target);
  if (!in_leader || *in_leader) return in_leader;
  DirPtr tasks = open_dir_at(proc_dir, "task");
  if (!tasks) {
    if (vanished(errno)) return false;
    return Error::from_errno("opening task");
  }
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(tasks.get());
    if (entry == nullptr) {
      if (errno == 0 || vanished(errno)) return false;
      return Error::from_errno("listing task");
    }
    if (is_dot(entry->d_name)) continue;
    pid_t tid = 0;
    if (!parse_number(std::string_view(entry->d_name), 10, &tid) || tid == pid) continue;
    if (::syscall(SYS_kcmp, pid, tid, KCMP_FILES, 0, 0) == 0) continue;  // shares the table
    auto in_thread = fd_dir_holds(proc_dir, "task/" + std::string(entry->d_name) + "/fd", target);
    if (!in_thread || *in_thread) return in_thread;
  }
}

struct Owner {
  pid_t pid = -1;
  UniqueFd dir;  // /proc/<pid>, held so a recycled pid cannot stand in for the owner later
};

Result<std::vector<Owner>> find_owners(const std::string& procs_file, std::uint64_t inode) {
  auto pids = read_pids(procs_file);
  if (!pids) return pids.error();
  const std::string target = "socket:[" + std::to_string(inode) + "]";
  std::vector<Owner> owners;
  for (pid_t pid : *pids) {
    const bool seen =
        std::any_of(owners.begin(), owners.end(), [pid](const Owner& o) { return o.pid == pid; });
    if (seen) continue;
    UniqueFd dir = open_proc_dir(pid);
    if (!dir) {
      if (vanished(errno)) continue;
      return Error::from_errno("opening /proc/" + std::to_string(pid));
    }
    auto holds = process_holds(dir.get(), pid, target);
    if (!holds) {
      // Not skipped: a process we cannot inspect could be a second owner (fail closed).
      return holds.error().wrap("inspecting the fds of pid " + std::to_string(pid));
    }
    if (*holds) owners.push_back(Owner{pid, std::move(dir)});
  }
  return owners;
}

// readlink of <proc_dir>/exe. An unlinked or replaced binary reads "<path> (deleted)"; the
// suffix is the kernel's, so it is dropped and the path it was started from remains.
Result<std::string> read_exe(int proc_dir, pid_t pid) {
  char buf[PATH_MAX];
  const ssize_t n = ::readlinkat(proc_dir, "exe", buf, sizeof buf);
  if (n < 0) return Error::from_errno("reading /proc/" + std::to_string(pid) + "/exe");
  if (static_cast<size_t>(n) == sizeof buf) {
    return Error{std::make_error_code(std::errc::filename_too_long),
                 "/proc/" + std::to_string(pid) + "/exe"};
  }
  std::string exe(buf, static_cast<size_t>(n));
  constexpr std::string_view kDeleted = " (deleted)";
  if (exe.size() > kDeleted.size() && std::string_view(exe).ends_with(kDeleted)) {
    exe.resize(exe.size() - kDeleted.size());
  }
  return exe;
}

// The PPid: line of <proc_dir>/status. It sits in the first few hundred bytes, after Name:
// (which the kernel escapes, so it cannot fake a line of its own).
Result<pid_t> read_ppid(int proc_dir, pid_t pid) {
  const std::string what = "/proc/" + std::to_string(pid) + "/status";
  UniqueFd fd(::openat(proc_dir, "status", O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("opening " + what);
  char buf[2048];
  size_t len = 0;
  while (len < sizeof buf) {
    const ssize_t n = ::read(fd.get(), buf + len, sizeof buf - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("reading " + what);
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
  }
  const std::string_view text(buf, len);
  constexpr std::string_view kKey = "\nPPid:";
  const size_t at = text.find(kKey);
  if (at != std::string_view::npos) {
    std::string_view value = text.substr(at + kKey.size());
    value.remove_prefix(std::min(value.find_first_not_of(" \t"), value.size()));
    value = value.substr(0, std::min(value.find('\n'), value.size()));
    pid_t ppid = 0;
    if (parse_number(value, 10, &ppid) && ppid >= 0) return ppid;
  }
  return Error{std::make_error_code(std::errc::bad_message), "no PPid in " + what};
}

// The exes of pid's ancestors, nearest first, up to (not including) sandbox_init. Each parent
// is opened by pid and then confirmed by re-reading the child's PPid: a parent that exited and
// whose pid was recycled in between would otherwise lend its exe to the chain.
Status append_ancestors(UniqueFd dir, pid_t pid, pid_t sandbox_init,
                        std::vector<std::string>* chain) {
  int retries = 0;
  // The owner may be the init itself; nothing above it belongs to the sandbox.
  while (pid != sandbox_init && chain->size() < kMaxChain) {
    auto ppid = read_ppid(dir.get(), pid);
    if (!ppid) return ppid.error();
    if (*ppid == sandbox_init || *ppid <= 1) return {};
    UniqueFd parent = open_proc_dir(*ppid);
    const int open_err = errno;
    auto confirmed = read_ppid(dir.get(), pid);
    if (!confirmed) return confirmed.error();
    if (!parent || *confirmed != *ppid) {
      if (*confirmed != *ppid && ++retries <= kMaxReparentRetries) continue;  // reparented
      if (!parent) return Error::from_errno("opening /proc/" + std::to_string(*ppid), open_err);
      return Error{std::make_error_code(std::errc::resource_unavailable_try_again),
                   "pid " + std::to_string(pid) + " keeps changing parents"};
    }
    auto exe = read_exe(parent.get(), *ppid);
    if (!exe) return exe.error();
    chain->push_back(std::move(*exe));
    dir = std::move(parent);
    pid = *ppid;
  }
  return {};
}

// Whether the process that connected still has the socket at the descriptor it connected.
bool still_holds(const ConnectRecord& seen, std::uint64_t inode) {
  const std::string path = "/proc/" + std::to_string(seen.pid) + "/fd/" + std::to_string(seen.fd);
  char link[64];
  const ssize_t n = ::readlink(path.c_str(), link, sizeof link);
  return n > 0 &&
         std::string_view(link, static_cast<size_t>(n)) == "socket:[" + std::to_string(inode) + "]";
}

std::string join_pids(const std::vector<Owner>& owners) {
  std::string out;
  for (const Owner& o : owners) {
    if (!out.empty()) out += ' ';
    out += std::to_string(o.pid);
  }
  return out;
}

}  // namespace

Result<std::vector<std::string>> exe_chain(pid_t pid, pid_t sandbox_init) {
  UniqueFd dir = open_proc_dir(pid);
  if (!dir) return Error::from_errno("opening /proc/" + std::to_string(pid));
  auto exe = read_exe(dir.get(), pid);
  if (!exe) return exe.error();
  std::vector<std::string> chain{std::move(*exe)};
  if (auto st = append_ancestors(std::move(dir), pid, sandbox_init, &chain); !st)
    return st.error().wrap("ancestors of pid " + std::to_string(pid));
  return chain;
}

Result<PeerIdentity> identify_peer(pid_t sandbox_init, const std::string& procs_file,
                                   const sockaddr_storage& client, const sockaddr_storage& server,
                                   int diag_fd, const ConnectTracker* tracker) {
  auto client_end = endpoint_of(client);
  if (!client_end) return client_end.error();
  auto server_end = endpoint_of(server);
  if (!server_end) return server_end.error();

  Result<std::uint64_t> inode = std::uint64_t{0};
  bool found = false;
  if (diag_fd >= 0) {
    // A v4 tuple belongs to an AF_INET socket, or to an AF_INET6 one using mapped addresses.
    for (bool as_v4 : {true, false}) {
      if (as_v4 && !is_v4_mapped(*client_end)) continue;
      auto r = diag_inode(diag_fd, *client_end, *server_end, as_v4);
      if (!r) return r.error();
      if (r->has_value()) {
        inode = **r;
        found = true;
        break;
      }
    }
    if (!found)
      return Error{std::make_error_code(std::errc::no_such_file_or_directory),
                   "no client socket " + to_string(*client_end) + " -> " + to_string(*server_end) +
                       " in the sandbox's network namespace"};
  } else {
    inode = find_socket_inode(sandbox_init, *client_end, *server_end);
  }
  if (!inode) return inode.error();

  if (tracker != nullptr) {
    if (auto seen = tracker->find(*inode); seen && still_holds(*seen, *inode))
      return PeerIdentity{seen->pid, std::move(seen->chain)};
  }

  auto owners = find_owners(procs_file, *inode);
  if (!owners) return owners.error();
  if (owners->empty()) {
    return Error{std::make_error_code(std::errc::no_such_process),
                 "no sandbox process holds socket " + std::to_string(*inode) +
                     " (closed, or passed outside the sandbox)"};
  }
  if (owners->size() > 1) {
    // A forked child sharing the socket is ambiguous by design: either process may write.
    return Error{std::make_error_code(std::errc::operation_not_permitted),
                 "socket held by " + std::to_string(owners->size()) + " processes (pids " +
                     join_pids(*owners) + "): ambiguous, refusing"};
  }

  PeerIdentity id;
  id.pid = owners->front().pid;
  UniqueFd dir = std::move(owners->front().dir);
  auto exe = read_exe(dir.get(), id.pid);
  if (!exe) return exe.error();
  id.chain.push_back(std::move(*exe));
  if (auto st = append_ancestors(std::move(dir), id.pid, sandbox_init, &id.chain); !st) {
    return st.error().wrap("ancestors of pid " + std::to_string(id.pid));
  }
  return id;
}

}  // namespace openshell::supervisor::proxy
