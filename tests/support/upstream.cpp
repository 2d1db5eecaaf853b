#include "tests/support/upstream.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "core/unique_fd.hpp"

namespace openshell::testing {
namespace {

constexpr int kSlots = 16384;  // the /30s of 10.77.0.0/16
constexpr int kSlotsPerProcess = 4;
constexpr std::string_view kNetnsPrefix = "osh-up-";
constexpr std::string_view kVethPrefix = "oshu";
// The peer is created directly inside the fresh namespace, so no name there can clash.
constexpr const char* kPeerName = "up0";
constexpr int kIpTimeoutS = 10;
constexpr int kServerStartMs = 10000;

std::atomic<int> next_index{0};

const std::string& ip_bin() {
  static const std::string path = [] {
    for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (access(p, X_OK) == 0) return std::string(p);
    }
    return std::string("/usr/sbin/ip");  // let posix_spawn report what is missing
  }();
  return path;
}

Outcome ip(std::vector<std::string> args) {
  args.insert(args.begin(), ip_bin());
  return run_process(args, kIpTimeoutS);
}

void ip_or_throw(const std::vector<std::string>& args) {
  const Outcome o = ip(args);
  if (o.exit_code == 0) return;
  std::string command = "ip";
  for (const auto& a : args) command += " " + a;
  throw std::runtime_error("UpstreamHost: `" + command + "` failed (" +
                           std::to_string(o.exit_code) + "): " + o.err);
}

std::string slot_v4(int slot, int host_part) {
  return "10.77." + std::to_string(slot / 64) + "." + std::to_string(slot % 64 * 4 + host_part);
}

// Canonical text (what inet_ntop and the server's peer= print), e.g. slot 0 is "fd77::2".
std::string slot_v6(int slot, int host_part) {
  char spelled[64];
  std::snprintf(spelled, sizeof spelled, "fd77:%x::%x", static_cast<unsigned>(slot),
                static_cast<unsigned>(host_part));
  in6_addr addr{};
  char canonical[INET6_ADDRSTRLEN] = "";
  if (inet_pton(AF_INET6, spelled, &addr) != 1 ||
      inet_ntop(AF_INET6, &addr, canonical, sizeof canonical) == nullptr) {
    return spelled;
  }
  return canonical;
}

// Host-wide lock held from "which slots are free?" until our addresses are assigned: without it
// two test processes could both see a slot free and both take it. Closing the fd releases it,
// also when a test process dies.
class SlotLock {
 public:
  SlotLock() {
    for (const char* path :
         {"/run/openshell-test-upstream.lock", "/tmp/openshell-test-upstream.lock"}) {
      fd_.reset(open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
      if (fd_) break;
    }
    if (!fd_) throw std::runtime_error("UpstreamHost: cannot open the slot lock file");
    // Holders keep it for a few `ip` calls; 30 s means something is badly wrong, not busy.
    if (!eventually([&] { return flock(fd_.get(), LOCK_EX | LOCK_NB) == 0; }, 30000)) {
      throw std::runtime_error("UpstreamHost: timed out waiting for the slot lock");
    }
  }

 private:
  UniqueFd fd_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// Slots that any interface of the host namespace holds, by address or by veth name. A veth left
// without an address (a test killed mid-setup) still blocks its slot, since `ip link add` would
// fail on the name.
std::set<int> used_slots() {
  std::set<int> used;
  for (const auto& line : lines_of(ip({"-o", "-4", "addr", "show"}).out)) {
    const auto at = line.find(" inet 10.77.");
    if (at == std::string::npos) continue;
    unsigned c = 0, d = 0;
    if (std::sscanf(line.c_str() + at, " inet 10.77.%u.%u", &c, &d) == 2 && c < 256 && d < 256) {
      used.insert(static_cast<int>(c * 64 + d / 4));
    }
  }
  // "7: oshu123@if2: <BROADCAST,...": the name runs up to '@' (veth) or ':'.
  for (const auto& line : lines_of(ip({"-o", "link", "show"}).out)) {
    const auto start = line.find(": ");
    if (start == std::string::npos) continue;
    const auto end = line.find_first_of("@:", start + 2);
    const std::string name = line.substr(start + 2, end - start - 2);
    if (name.rfind(kVethPrefix, 0) != 0) continue;
    const std::string digits = name.substr(kVethPrefix.size());
    if (all_digits(digits) && digits.size() <= 5) used.insert(std::stoi(digits));
  }
  return used;
}

// Namespaces of test processes that died without cleaning up (killed by a CTest timeout, say),
// and one with our own name left by an earlier process that had our pid. Deleting the namespace
// also removes its veth pair once any straggling server in it has exited (they time out by
// themselves), which frees the slot. A live owner's namespace is never touched.
void reap_stale_namespaces(const std::string& own_name) {
  for (const auto& line : lines_of(ip({"netns", "list"}).out)) {
    const std::string name = line.substr(0, line.find(' '));
    if (name.rfind(kNetnsPrefix, 0) != 0) continue;
    const std::string rest = name.substr(kNetnsPrefix.size());
    const std::string pid_text = rest.substr(0, rest.find('-'));
    if (!all_digits(pid_text) || pid_text.size() > 9) continue;
    const bool owner_dead = kill(std::stoi(pid_text), 0) == -1 && errno == ESRCH;
    if (owner_dead || name == own_name) ip({"netns", "del", name});
  }
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  std::string word;
  while (in >> word) words.push_back(word);
  return words;
}

}  // namespace

UpstreamHost::UpstreamHost() {
  const int index = next_index++;
  const long pid = getpid();
  netns_ = std::string(kNetnsPrefix) + std::to_string(pid) + "-" + std::to_string(index);

  SlotLock lock;
  reap_stale_namespaces(netns_);
  const std::set<int> used = used_slots();
  // Start where this process's own block of slots lies, so parallel test processes (nearby
  // pids) rarely even probe the same slots; the scan then takes the first free one.
  const long first = (pid * kSlotsPerProcess + index) % kSlots;
  int slot = -1;
  for (long i = 0; i < kSlots && slot < 0; ++i) {
    const int candidate = static_cast<int>((first + i) % kSlots);
    if (used.count(candidate) == 0) slot = candidate;
  }
  if (slot < 0) throw std::runtime_error("UpstreamHost: all 10.77.0.0/16 test slots are in use");
  try {
    create_links(slot);
  } catch (...) {
    cleanup();
    throw;
  }
}

void UpstreamHost::create_links(int slot) {
  veth_ = std::string(kVethPrefix) + std::to_string(slot);
  host_address_ = slot_v4(slot, 1);
  address_ = slot_v4(slot, 2);

  ip_or_throw({"netns", "add", netns_});
  ip_or_throw({"link", "add", veth_, "type", "veth", "peer", "name", kPeerName, "netns", netns_});
  ip_or_throw({"addr", "add", host_address_ + "/30", "dev", veth_});
  ip_or_throw({"-n", netns_, "addr", "add", address_ + "/30", "dev", kPeerName});
  ip_or_throw({"link", "set", veth_, "up"});
  ip_or_throw({"-n", netns_, "link", "set", kPeerName, "up"});
  ip_or_throw({"-n", netns_, "link", "set", "lo", "up"});

  // IPv6 only where the kernel has it enabled; nodad makes the addresses usable at once instead
  // of "tentative" for a second or so.
  const std::string host6 = slot_v6(slot, 1), ns6 = slot_v6(slot, 2);
  const auto add6 = [&](const std::vector<std::string>& where, const std::string& addr,
                        const std::string& dev) {
    std::vector<std::string> args = where;
    args.insert(args.end(), {"-6", "addr", "add", addr + "/126", "dev", dev, "nodad"});
    return ip(args).exit_code == 0;
  };
  if (add6({}, host6, veth_) && add6({"-n", netns_}, ns6, kPeerName)) {
    host_address6_ = host6;
    address6_ = ns6;
  }

  // The veth carries traffic once both ends are up; the kernel reports that asynchronously.
  const auto veth_up = [&] {
    return ip({"-o", "link", "show", "dev", veth_}).out.find("state UP") != std::string::npos;
  };
  if (!eventually(veth_up, 5000)) {
    throw std::runtime_error("UpstreamHost: " + veth_ + " did not come up");
  }
}

void UpstreamHost::start(std::uint16_t port, const std::string& mode, int seconds) {
  run_server("upstream_server", port, mode, seconds, {&address_, &address6_});
}

void UpstreamHost::start_tls_upstream(std::uint16_t port, const std::string& mode, int seconds) {
  run_server("tls_upstream", port, mode, seconds, {&address_});
}

void UpstreamHost::run_server(const std::string& program, std::uint16_t port,
                              const std::string& mode, int seconds,
                              std::initializer_list<const std::string*> addresses) {
  std::vector<std::string> mode_args = split_words(mode);
  for (const std::string* addr : addresses) {
    if (addr->empty()) continue;
    const std::string log = dir_.path() + "/server-" + std::to_string(logs_.size()) + ".log";
    std::vector<std::string> argv = {
        ip_bin(), "netns", "exec", netns_, helper(program), *addr, std::to_string(port)};
    argv.insert(argv.end(), mode_args.begin(), mode_args.end());
    argv.push_back(std::to_string(seconds));
    const pid_t pid = spawn_process(argv, log);
    logs_.push_back(log);
    bool exited = false;
    const bool settled = eventually(
        [&] {
          if (read_text(log).find("listening ") != std::string::npos) return true;
          int status = 0;
          exited = waitpid(pid, &status, WNOHANG) == pid;
          return exited;
        },
        kServerStartMs);
    if (!exited) servers_.push_back(pid);  // an exited server is reaped already
    if (exited || !settled) {
      throw std::runtime_error("UpstreamHost: " + program + " " + *addr + " " +
                               std::to_string(port) + " " + mode +
                               " did not start: " + read_text(log));
    }
  }
}

std::string UpstreamHost::server_output() const {
  std::string out;
  for (const auto& log : logs_) out += read_text(log);
  return out;
}

UpstreamHost::~UpstreamHost() { cleanup(); }

void UpstreamHost::cleanup() noexcept {
  for (const pid_t pid : servers_) {
    kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, 0) == -1 && errno == EINTR) {
    }
  }
  servers_.clear();
  try {
    // Deleting one end of a veth pair deletes both; deleting it explicitly (rather than leaving
    // it to the namespace's teardown) makes the host side vanish before we return.
    if (!veth_.empty()) ip({"link", "del", veth_});
    if (!netns_.empty()) ip({"netns", "del", netns_});
  } catch (...) {
    // run_process throws only when it cannot spawn `ip` at all; nothing more to do then.
  }
}

}  // namespace openshell::testing
