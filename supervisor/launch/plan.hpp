// The launch plan: everything the pre-exec child needs, decided and allocated in the parent
// (paths opened, ids chosen, seccomp compiled, argv/envp laid out). The child only reads it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cidr.hpp"
#include "core/event_sink.hpp"
#include "core/names.hpp"
#include "core/policy.hpp"
#include "core/services.hpp"
#include "core/result.hpp"
#include "core/unique_fd.hpp"
#include "sys/caps.hpp"
#include "sys/cgroup.hpp"
#include "sys/landlock.hpp"
#include "sys/seccomp.hpp"

namespace openshell::supervisor {

namespace proxy {
struct Termination;  // supervisor/proxy/tls_contexts.hpp
}

// Where the new root is assembled inside the child's private mount namespace before
// pivot_root. The child opens every bind source (O_PATH) before it mounts over this path, so
// shadowing it hides nothing we need, not even host paths under /tmp.
inline constexpr const char* kAssemblyBase = "/tmp";
inline constexpr const char* kWorkspacePath = "/sandbox";

struct MountEntry {
  enum class Kind { kBind, kSymlink, kTmpfs, kProc, kDev, kGeneratedFile };
  Kind kind = Kind::kBind;
  std::string target;      // path inside the sandbox
  std::string stage_path;  // kAssemblyBase + target: where the child mounts it before pivot
  std::string source;      // kBind: host path, opened O_PATH by the child
  bool source_is_dir = true;
  bool read_only = true;
  bool allow_devices = false;  // binds of device nodes under /dev keep them usable
  std::string link_target;     // kSymlink
  std::string tmpfs_options;   // kTmpfs, kDev, kProc
  std::string content;         // kGeneratedFile: written by the child, then bound read-only
  bool generated_done = false;  // kGeneratedFile: the child placed it with its directory's set
  bool opened_as_owner = true;  // kBind: opened with the owner's credentials (plan.open_as_owner)
};

class StatusReporter;  // supervisor/run.hpp

struct RunOptions {
  std::string name;              // validated sandbox name
  std::string workdir;           // host directory for /sandbox; empty = private tmpfs
  bool workdir_readonly = false;  // --workdir-readonly: bound read-only
  // --workdir-from-daemon: the workdir is openshelld's own workspace of this sandbox (made by
  // root for the owner in a root-only directory), opened as root even with `owner`; any other
  // workdir is the owner's and is looked at and opened as the owner.
  bool workdir_trusted = false;
  std::vector<std::string> env;  // K=V from --env
  std::vector<std::string> command;
  std::string cgroup_parent = "openshell";
  bool cgroup_delegated = false;  // build inside our own cgroup instead (systemd Delegate=yes)
  StatusReporter* status = nullptr;                  // --status-fd
  std::optional<sys::CgroupVersion> cgroup_version;  // nullopt: the host's primary hierarchy
  std::string policy_file;  // re-read on SIGHUP; empty when the built-in default is used
  std::map<std::string, std::vector<IpAddress>> static_hosts;  // --resolve NAME=ADDRESS
  std::string control_socket;  // --control PATH: the daemon's way in (control_server.hpp)
  // Limits where the policy's [resources] sets none (--default KEY=VALUE: the daemon's config).
  policy::Resources resource_defaults = policy::builtin_resource_defaults();
  // --owner UID: the user the sandbox is for (a non-root daemon caller). Every host path of
  // the policy and the workdir is resolved and opened with that user's credentials, so a
  // sandbox never shows its owner a file the owner could not reach on the host.
  std::optional<uid_t> owner;
  // TLS termination (the sandbox CA; tls_contexts.hpp), made on a thread
  // while the sandbox is built; asked for when the plan needs the CA's certificate and when
  // the proxy starts (the same answer both times). When set, the sandbox gets
  // /etc/openshell-tls/ (openshell-ca.pem: the CA alone; ca-bundle.pem: the host's roots and
  // the CA) and the environment that points TLS clients there. Never a key.
  std::function<Result<std::shared_ptr<proxy::Termination>>()> tls;
  // --upstream-proxy, checked: http://HOST:PORT, or "" for none.
  std::string upstream_proxy;
  // --services-on-status: the providers (their placeholders are in `env` already) and the
  // inference routes the daemon sent; null when it sent none.
  std::shared_ptr<const services::Services> services;
};

inline constexpr const char* kTlsDir = "/etc/openshell-tls";

struct LaunchPlan {
  std::string name;
  std::vector<MountEntry> mounts;  // in mount order (parents before children)
  std::vector<int> source_fds;     // one slot per mount, filled by the child
  // With RunOptions::owner: the child opens the bind sources with these credentials (the
  // workdir, handed over by a daemon that made it, excepted), then takes back `own_groups`.
  bool open_as_owner = false;
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  std::vector<gid_t> owner_groups;
  std::vector<gid_t> own_groups;
  std::string hostname;
  uint32_t inside_uid = policy::kSandboxUid;
  uint32_t inside_gid = policy::kSandboxGid;
  uint32_t outside_uid = 0;
  uint32_t outside_gid = 0;
  sys::LandlockPlan landlock;
  sys::SeccompProgram seccomp;
  sys::SeccompProgram connect_notify;  // see sys::build_connect_notify
  std::unique_ptr<sys::CapDropPlan> caps;
  std::string cwd;
  // Our command line's place in memory (/proc/self/stat arg_start, arg_end): the child blanks it.
  uintptr_t arg_start = 0;
  uintptr_t arg_end = 0;
  uint64_t tmp_size = 0;  // bytes of /tmp and /dev/shm; 0: no size= (the kernel's default)
  uint64_t shm_size = 0;
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;  // null-terminated views of the storage above
  std::vector<char*> envp;
  std::vector<std::string> exec_path;  // PATH directories for a bare command name
};

// Builds the plan. Paths that do not exist are skipped with an event under best_effort and
// are an error under hard_requirement.
Result<LaunchPlan> build_launch_plan(const policy::Policy& policy, const RunOptions& options,
                                     EventSink& events);

}  // namespace openshell::supervisor
