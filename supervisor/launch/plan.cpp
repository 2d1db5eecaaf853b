#include "supervisor/launch/plan.hpp"

#include <linux/landlock.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/capture.hpp"
#include "core/log.hpp"
#include "supervisor/proxy/tls_contexts.hpp"
#include "sys/credentials.hpp"
#include "sys/file_util.hpp"

namespace openshell::supervisor {
namespace {

// The host's trusted roots as one PEM bundle (Debian and Ubuntu, Fedora and RHEL, others), or
// "" when the host has none of them; at most 4 MiB.
std::string host_roots() {
  for (const char* file : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                           "/etc/ssl/cert.pem"}) {
    auto text = sys::read_file(file, 4 << 20);
    if (!text || text->empty()) continue;
    if (text->back() != '\n') text->push_back('\n');
    return std::move(*text);
  }
  return "";
}

using policy::LandlockCompatibility;

// Devices every sandbox has; they are created, never bound from the host.
constexpr const char* kMinimalDev[] = {
    "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",   "/dev/pts",
    "/dev/shm",  "/dev/ptmx", "/dev/fd",   "/dev/stdin",  "/dev/stdout",  "/dev/stderr"};

bool is_under(std::string_view path, std::string_view dir) {
  return path == dir ||
         (path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/');
}

// Paths the sandbox always provides itself: a listed path there is satisfied, not bound.
bool provided_by_sandbox(std::string_view path, bool has_workspace) {
  if (is_under(path, "/proc")) return true;  // never the host's /proc
  if (path == "/dev" || path == "/tmp") return true;
  for (const char* dev : kMinimalDev)
    if (is_under(path, dev)) return true;
  return has_workspace && is_under(path, kWorkspacePath);
}

nlohmann::json path_fields(const std::string& path, int err) {
  return {{"file", {{"path", path}}}, {"errno", err}, {"error", std::strerror(err)}};
}

MountEntry make_entry(MountEntry::Kind kind, const std::string& target) {
  MountEntry m;
  m.kind = kind;
  m.target = target;
  m.stage_path = std::string(kAssemblyBase) + target;
  return m;
}

std::string passwd_content(uint32_t uid, uint32_t gid, const std::string& home) {
  return "root:x:0:0:root:/root:/usr/sbin/nologin\n"
         "sandbox:x:" +
         std::to_string(uid) + ":" + std::to_string(gid) + ":sandbox:" + home +
         ":/bin/sh\n"
         "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
}

std::string group_content(uint32_t gid) {
  return "root:x:0:\nsandbox:x:" + std::to_string(gid) + ":\nnogroup:x:65534:\n";
}

}  // namespace

Result<LaunchPlan> build_launch_plan(const policy::Policy& policy, const RunOptions& options,
                                     EventSink& events) {
  LaunchPlan plan;
  plan.name = options.name;
  plan.hostname = options.name;
  plan.inside_uid = policy.process.run_as_user;
  plan.inside_gid = policy.process.run_as_group;
  const bool hard = policy.landlock == LandlockCompatibility::kHardRequirement;
  const int abi = sys::landlock_abi();

  // Identity outside: the owner of the workspace (so the agent's files are theirs), or an id
  // of the sandbox's own. Never root.
  plan.outside_uid = plan.outside_gid = sandbox_outside_id(options.name);
  // A non-root owner's paths are looked at with the owner's credentials, here and when the child
  // opens them: what the owner could not reach on the host is refused, never bound.
  std::optional<sys::UserCredentials> owner;
  if (options.owner && *options.owner != 0) {
    auto who = sys::credentials_of(*options.owner);
    if (!who) return who.error();
    owner = std::move(*who);
    plan.open_as_owner = true;
    plan.owner_uid = owner->uid;
    plan.owner_gid = owner->gid;
    plan.owner_groups = owner->groups;
    const int n = ::getgroups(0, nullptr);
    plan.own_groups.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (n > 0 && ::getgroups(n, plan.own_groups.data()) != n) return Error::from_errno("getgroups");
  }
  const auto enter_owner = [&]() -> Result<std::optional<sys::ScopedFsIdentity>> {
    if (!owner) return std::optional<sys::ScopedFsIdentity>();
    auto entered = sys::ScopedFsIdentity::enter(*owner);
    if (!entered) return entered.error();
    return std::optional<sys::ScopedFsIdentity>(std::move(*entered));
  };

  // The workdir: the owner's own (looked at as the owner), or openshelld's workspace of this
  // sandbox (workdir_trusted: made by root for the owner, under a root-only directory).
  std::string workdir;
  if (!options.workdir.empty()) {
    auto scope = options.workdir_trusted ? Result<std::optional<sys::ScopedFsIdentity>>(
                                               std::optional<sys::ScopedFsIdentity>())
                                         : enter_owner();
    if (!scope) return scope.error();
    char resolved[PATH_MAX];
    if (::realpath(options.workdir.c_str(), resolved) == nullptr)
      return Error::from_errno("workdir " + options.workdir);
    workdir = resolved;
    struct stat st;
    if (::stat(workdir.c_str(), &st) != 0) return Error::from_errno("workdir " + workdir);
    if (!S_ISDIR(st.st_mode)) return Error::invalid("workdir " + workdir + " is not a directory");
    if (st.st_uid == 0)
      return Error::invalid("workdir " + workdir +
                            " is owned by root; the agent never acts as root outside the "
                            "sandbox: chown it to the user the agent should write as");
    if (workdir == "/") return Error::invalid("workdir / would expose the whole host");
    if (owner && st.st_uid != owner->uid)
      return Error::invalid("workdir " + workdir + " belongs to uid " + std::to_string(st.st_uid) +
                            ", not to uid " + std::to_string(owner->uid) + ", whose sandbox this is");
    plan.outside_uid = st.st_uid;
    plan.outside_gid = st.st_gid;
  }

  auto as_owner = enter_owner();
  if (!as_owner) return as_owner.error();

  // Listed host paths: bound read-only or read-write. A path that is missing is skipped under
  // best_effort and fatal under hard_requirement; one the owner may not reach is refused.
  struct Listed {
    std::string path;
    bool read_only;
  };
  std::vector<Listed> listed;
  for (const auto& p : policy.filesystem.read_only) listed.push_back({p, true});
  for (const auto& p : policy.filesystem.read_write) listed.push_back({p, false});
  for (const auto& [path, read_only] : listed) {
    if (path == "/")
      return Error::invalid(
          "filesystem path '/' cannot be bound: list the directories the agent "
          "needs");
    if (provided_by_sandbox(path, policy.filesystem.include_workdir)) continue;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      const int err = errno;
      if (*as_owner && err != ENOENT && err != ENOTDIR)
        return Error::from_errno("policy path " + path + ": uid " + std::to_string(plan.owner_uid) +
                                     ", whose sandbox this is, cannot reach it on the host, so "
                                     "the sandbox may not show it either",
                                 err);
      if (hard)
        return Error::from_errno("landlock compatibility is hard_requirement and policy path " +
                                     path + " is not available",
                                 err);
      log::warn("supervisor", "skipping policy path " + path + ": " + std::strerror(err));
      events.emit(ocsf::config_change(
          options.name, "Skipped", ocsf::Severity::kMedium, ocsf::StatusId::kFailure,
          "skipping Landlock path " + path + ": " + std::strerror(err), path_fields(path, err)));
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      // Recreate the link (e.g. /lib64 -> usr/lib64); what it points to must be listed itself.
      char target[PATH_MAX];
      ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
      if (n < 0) return Error::from_errno("reading link " + path);
      target[n] = '\0';
      MountEntry m = make_entry(MountEntry::Kind::kSymlink, path);
      m.link_target = target;
      plan.mounts.push_back(std::move(m));
      continue;
    }
    MountEntry m = make_entry(MountEntry::Kind::kBind, path);
    m.source = path;
    m.source_is_dir = S_ISDIR(st.st_mode);
    m.read_only = read_only;
    m.allow_devices = is_under(path, "/dev") && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode));
    plan.mounts.push_back(std::move(m));
    plan.landlock.rules.push_back(
        {path, read_only ? sys::landlock_read_exec(abi) : sys::landlock_read_write(abi)});
  }

  as_owner->reset();  // the rest is ours: the workspace, the generated files

  // What every sandbox has. Its tmpfs are sized (their pages count against memory_max too,
  // but a host without the memory controller has only this bound).
  const policy::Resources effective =
      policy::with_defaults(policy.resources, options.resource_defaults);
  const auto size_of = [](const std::optional<uint64_t>& size) {
    return size && *size != policy::kUnlimited ? *size : uint64_t{0};
  };
  plan.tmp_size = size_of(effective.tmp_size);
  plan.shm_size = size_of(effective.shm_size);
  const auto sized = [](uint64_t size) {
    return size == 0 ? std::string() : ",size=" + std::to_string(size);
  };
  {
    MountEntry dev = make_entry(MountEntry::Kind::kDev, "/dev");
    dev.tmpfs_options = "mode=0755,size=64k,nr_inodes=512";
    plan.mounts.push_back(std::move(dev));
    MountEntry shm = make_entry(MountEntry::Kind::kTmpfs, "/dev/shm");
    shm.tmpfs_options = "mode=1777" + sized(plan.shm_size);
    shm.read_only = false;
    plan.mounts.push_back(std::move(shm));
    plan.mounts.push_back(make_entry(MountEntry::Kind::kProc, "/proc"));
    MountEntry tmp = make_entry(MountEntry::Kind::kTmpfs, "/tmp");
    tmp.tmpfs_options = "mode=1777" + sized(plan.tmp_size);
    tmp.read_only = false;
    plan.mounts.push_back(std::move(tmp));
    // Listing the root shows only mount points; without it `ls /` fails for no gain.
    plan.landlock.rules.push_back(
        {"/", sys::landlock_handled_fs(abi) & LANDLOCK_ACCESS_FS_READ_DIR});
    plan.landlock.rules.push_back({"/dev", sys::landlock_device_rw(abi)});
    plan.landlock.rules.push_back({"/dev/shm", sys::landlock_read_write(abi)});
    plan.landlock.rules.push_back(
        {"/proc", sys::landlock_device_rw(abi) | sys::landlock_read_exec(abi)});
    plan.landlock.rules.push_back({"/tmp", sys::landlock_read_write(abi)});
  }
  std::string home = "/";
  if (policy.filesystem.include_workdir) {
    home = kWorkspacePath;
    if (!workdir.empty()) {
      MountEntry ws = make_entry(MountEntry::Kind::kBind, kWorkspacePath);
      ws.source = workdir;
      ws.read_only = options.workdir_readonly;
      ws.opened_as_owner = !options.workdir_trusted;
      plan.mounts.push_back(std::move(ws));
    } else {
      MountEntry ws = make_entry(MountEntry::Kind::kTmpfs, kWorkspacePath);
      // Memory too, so bounded as /tmp is.
      ws.tmpfs_options = "mode=0700,uid=" + std::to_string(plan.outside_uid) +
                         ",gid=" + std::to_string(plan.outside_gid) + sized(plan.tmp_size);
      ws.read_only = false;
      plan.mounts.push_back(std::move(ws));
    }
    plan.landlock.rules.push_back(
        {kWorkspacePath, !workdir.empty() && options.workdir_readonly
                             ? sys::landlock_read_exec(abi)
                             : sys::landlock_read_write(abi)});
  }
  plan.cwd = home;
  // Fields 48 and 49 of /proc/self/stat, counted after the command name's closing parenthesis
  // (the name may hold spaces and parentheses itself).
  if (auto stat = sys::read_file("/proc/self/stat", 4096)) {
    const auto close = stat->rfind(')');
    std::istringstream fields(close == std::string::npos ? std::string() : stat->substr(close + 2));
    std::string field;
    for (int n = 3; n <= 49 && fields >> field; ++n) {
      if (n == 48) plan.arg_start = std::strtoull(field.c_str(), nullptr, 10);
      if (n == 49) plan.arg_end = std::strtoull(field.c_str(), nullptr, 10);
    }
  }

  // Generated identity and name files, bound over whatever the host's /etc has, and the
  // sandbox CA for the TLS clients inside.
  std::vector<std::pair<std::string, std::string>> generated = {
      {"/etc/passwd", passwd_content(plan.inside_uid, plan.inside_gid, home)},
      {"/etc/group", group_content(plan.inside_gid)},
      {"/etc/hosts", "127.0.0.1\tlocalhost " + plan.hostname + "\n::1\tlocalhost ip6-localhost\n" +
                         capture::kInferenceAddressText + "\t" + capture::kInferenceHost + "\n"},
      {"/etc/resolv.conf", std::string("# openshell: the sandbox's policy DNS\nnameserver ") +
                               capture::kSandboxAddressText + "\n"},
  };
  std::string tls_ca_pem;
  if (options.tls) {
    auto tls = options.tls();
    if (!tls) return tls.error().wrap("setting up TLS termination");
    tls_ca_pem = (*tls)->ca().certificate_pem();
    generated.emplace_back(std::string(kTlsDir) + "/openshell-ca.pem", tls_ca_pem);
    generated.emplace_back(std::string(kTlsDir) + "/ca-bundle.pem", host_roots() + tls_ca_pem);
  }
  for (const auto& [path, content] : generated) {
    // Ours, whatever the policy lists: a bind of the host's file there would only be covered.
    std::erase_if(plan.mounts, [&](const MountEntry& e) { return e.target == path; });
    MountEntry m = make_entry(MountEntry::Kind::kGeneratedFile, path);
    m.content = content;
    m.source_is_dir = false;
    plan.mounts.push_back(std::move(m));
    plan.landlock.rules.push_back({path, sys::landlock_read_exec(abi)});
  }

  // Parents before children; for equal paths keep the policy's order.
  std::stable_sort(plan.mounts.begin(), plan.mounts.end(),
                   [](const MountEntry& a, const MountEntry& b) { return a.target < b.target; });
  plan.source_fds.assign(plan.mounts.size(), -1);

  // Landlock.
  if (abi < 1) {
    if (hard)
      return Error{std::make_error_code(std::errc::not_supported),
                   "landlock compatibility is hard_requirement and this kernel has no Landlock"};
    events.emit(ocsf::config_change(options.name, "Skipped", ocsf::Severity::kHigh,
                                    ocsf::StatusId::kFailure,
                                    "Landlock is unavailable; running without it (best_effort)"));
    plan.landlock.rules.clear();
  }
  plan.landlock.abi = abi;
  plan.landlock.handled_fs = sys::landlock_handled_fs(abi);
  plan.landlock.scoped = 0x3;  // abstract unix sockets and signals stay inside the sandbox

  // Seccomp and capabilities.
  auto seccomp = sys::build_seccomp_baseline({});
  if (!seccomp) return seccomp.error().wrap("compiling seccomp baseline");
  plan.seccomp = std::move(*seccomp);
  auto connect_notify = sys::build_connect_notify();
  if (!connect_notify) return connect_notify.error().wrap("compiling the connect filter");
  plan.connect_notify = std::move(*connect_notify);
  auto caps = sys::CapDropPlan::create();
  if (!caps) return caps.error();
  plan.caps = std::make_unique<sys::CapDropPlan>(std::move(*caps));

  // A clean environment: nothing of the caller's leaks in but TERM.
  plan.exec_path = {"/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"};
  plan.env_storage = {
      "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
      "HOME=" + home,
      "USER=sandbox",
      "LOGNAME=sandbox",
      "SHELL=/bin/sh",
      "TMPDIR=/tmp",
      "LANG=C.UTF-8",
      "OPENSHELL_SANDBOX=" + options.name,
  };
  // Proxy-aware clients go through the explicit proxy and get readable denials; the rest are
  // captured all the same.
  const std::string proxy_url =
      "http://" + std::string(capture::kSandboxAddressText) + ":" +
      std::to_string(capture::kExplicitProxyPort);
  for (const char* var :
       {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"})
    plan.env_storage.push_back(std::string(var) + "=" + proxy_url);
  // TLS clients trust the sandbox's CA (the bundle: the host's roots and it; Node adds the CA
  // to its own).
  if (!tls_ca_pem.empty()) {
    const std::string bundle = std::string(kTlsDir) + "/ca-bundle.pem";
    for (const char* var :
         {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT"})
      plan.env_storage.push_back(std::string(var) + "=" + bundle);
    plan.env_storage.push_back(std::string("NODE_EXTRA_CA_CERTS=") + kTlsDir + "/openshell-ca.pem");
  }
  plan.env_storage.push_back("NO_PROXY=localhost,127.0.0.1,::1");
  plan.env_storage.push_back("no_proxy=localhost,127.0.0.1,::1");
  if (const char* term = std::getenv("TERM"))
    plan.env_storage.push_back(std::string("TERM=") + term);
  for (const auto& kv : options.env) {
    auto eq = kv.find('=');
    const std::string key = kv.substr(0, eq);
    plan.env_storage.erase(std::remove_if(plan.env_storage.begin(), plan.env_storage.end(),
                                          [&key](const std::string& e) {
                                            return e.compare(0, key.size() + 1, key + "=") == 0;
                                          }),
                           plan.env_storage.end());
    plan.env_storage.push_back(kv);
  }
  plan.argv_storage = options.command;
  for (auto& s : plan.argv_storage) plan.argv.push_back(s.data());
  plan.argv.push_back(nullptr);
  for (auto& s : plan.env_storage) plan.envp.push_back(s.data());
  plan.envp.push_back(nullptr);
  return plan;
}

}  // namespace openshell::supervisor
