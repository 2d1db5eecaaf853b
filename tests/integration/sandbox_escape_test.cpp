// Escape attempts from inside a sandbox, each through the try_syscall probe: one assertion per
// attempt, on the errno the kernel or our seccomp filter returns.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/support/harness.hpp"

using namespace openshell::testing;

namespace {

// workdir: a host directory for /sandbox (the probe's working directory), or none (a tmpfs).
std::map<std::string, std::string> attempt(const std::vector<std::string>& cases,
                                           const std::string& workdir = "") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  std::vector<std::string> argv = {supervisor_bin(), "run", "--policy-file", policy,
                                   "--name",         unique_name("esc")};
  if (!workdir.empty()) argv.insert(argv.end(), {"--workdir", workdir});
  argv.insert(argv.end(), {"--", helper("try_syscall")});
  argv.insert(argv.end(), cases.begin(), cases.end());
  auto r = run_process(argv);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return parse_cases(r.out);
}

}  // namespace

TEST_CASE("mount-namespace escapes fail") {
  auto c = attempt({"mount", "umount", "pivot_root", "chroot", "fsopen", "open_tree",
                    "mount_setattr", "move_mount", "unshare_mount"});
  CHECK(c["mount"] == "EPERM");
  CHECK(c["umount"] == "EPERM");
  CHECK(c["pivot_root"] == "EPERM");
  CHECK(c["chroot"] == "EPERM");
  CHECK(c["fsopen"] == "EPERM");
  CHECK(c["open_tree"] == "EPERM");
  CHECK(c["mount_setattr"] == "EPERM");
  CHECK(c["move_mount"] == "EPERM");
  CHECK(c["unshare_mount"] == "EPERM");
}

TEST_CASE("new user namespaces, setns and clone3 are refused") {
  auto c = attempt({"unshare_user", "clone_newuser", "setns", "clone3"});
  CHECK(c["unshare_user"] == "EPERM");
  CHECK(c["clone_newuser"] == "EPERM");
  CHECK(c["setns"] == "EPERM");
  CHECK(c["clone3"] == "ENOSYS");  // so libc falls back to clone, whose flags seccomp can see
}

TEST_CASE("other processes' memory is out of reach") {
  auto c = attempt({"ptrace_attach", "ptrace_traceme", "process_vm_readv", "open_proc1_mem"});
  CHECK(c["ptrace_attach"] == "EPERM");
  CHECK(c["ptrace_traceme"] == "EPERM");
  CHECK(c["process_vm_readv"] == "EPERM");
  CHECK(c["open_proc1_mem"] == "EACCES");
}

TEST_CASE("kernel attack surface is closed") {
  auto c = attempt({"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "kexec_load",
                    "init_module", "finit_module", "delete_module", "keyctl", "add_key",
                    "request_key", "open_by_handle_at"});
  for (const char* name :
       {"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "kexec_load", "init_module",
        "finit_module", "delete_module", "keyctl", "add_key", "request_key", "open_by_handle_at"}) {
    INFO(name);
    CHECK(c[name] == "EPERM");
  }
}

TEST_CASE("only unix, inet and route-netlink sockets can be created") {
  auto c = attempt({"socket_packet", "socket_netlink_sock_diag", "socket_vsock",
                    "socket_netlink_route", "socket_inet", "socket_inet6", "socket_unix"});
  CHECK(c["socket_packet"] == "EPERM");
  CHECK(c["socket_netlink_sock_diag"] == "EPERM");
  CHECK(c["socket_vsock"] == "EPERM");
  CHECK(c["socket_netlink_route"] == "ok");  // getifaddrs needs it
  CHECK(c["socket_inet"] == "ok");
  CHECK(c["socket_inet6"] == "ok");
  CHECK(c["socket_unix"] == "ok");
}

TEST_CASE("terminal injection and kernel knobs are refused") {
  auto c = attempt({"ioctl_tiocsti", "ioctl_tioclinux", "write_proc_sys"});
  CHECK(c["ioctl_tiocsti"] == "EPERM");
  CHECK(c["ioctl_tioclinux"] == "EPERM");
  CHECK(c["write_proc_sys"] == "EACCES");
}

TEST_CASE("root cannot be regained: setuid(0) and a setuid-root binary") {
  auto c = attempt({"setuid_root"});
  CHECK(c["setuid_root"] == "EINVAL");  // uid 0 is not even mapped in the sandbox

  // A setuid-root copy of print_ids, reachable inside the sandbox.
  TempDir bin;
  const std::string suid = bin.path() + "/print_ids_suid";
  std::filesystem::copy_file(helper("print_ids"), suid);
  REQUIRE(chown(suid.c_str(), 0, 0) == 0);
  REQUIRE(chmod(suid.c_str(), 04755) == 0);
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy(", \"" + bin.path() + "\""));
  auto r = run_process({supervisor_bin(), "run", "--policy-file", policy, "--name",
                        unique_name("suid"), "--", suid});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("euid=1000") != std::string::npos);
  CHECK(r.out.find("euid=0") == std::string::npos);
}

// Issue 13.D: what the agent writes in its workspace is on the host, where a set-user-id file of
// the workspace's owner would run as that owner for anyone. The workspace is nosuid in the
// sandbox, and no way of setting the bits gets through.
TEST_CASE("set-id bits cannot be set on files, and the workspace is nosuid") {
  TempDir host_side;
  const std::string workdir = host_side.path() + "/ws";
  REQUIRE(::mkdir(workdir.c_str(), 0755) == 0);
  REQUIRE(::chown(workdir.c_str(), 4321, 4321) == 0);
  const bool bound = GENERATE(false, true);  // the private tmpfs, then a host directory
  INFO((bound ? "workdir " + workdir : std::string("tmpfs workspace")));
  auto c = attempt({"chmod_setuid", "chmod_setgid", "fchmod_setuid", "fchmodat_setuid",
                    "fchmodat2_setuid", "open_creat_setuid", "creat_setuid", "mknod_setuid",
                    "openat2", "chmod_plain", "open_existing_any_mode", "cwd_nosuid"},
                   bound ? workdir : "");
  for (const char* name : {"chmod_setuid", "chmod_setgid", "fchmod_setuid", "fchmodat_setuid",
                           "open_creat_setuid", "creat_setuid", "mknod_setuid"}) {
    INFO(name);
    CHECK(c[name] == "EPERM");
  }
  CHECK(c["fchmodat2_setuid"] == "ENOSYS");  // libc falls back to fchmodat
  CHECK(c["openat2"] == "ENOSYS");           // libc falls back to openat
  // Ordinary modes, and opens that create nothing, are untouched.
  CHECK(c["chmod_plain"] == "ok");
  CHECK(c["open_existing_any_mode"] == "ok");
  CHECK(c["cwd_nosuid"] == "ok");
  // On the host: the probe's files are there, and none has a set-id bit.
  if (bound) {
    size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(workdir)) {
      struct stat st {};
      REQUIRE(::lstat(entry.path().c_str(), &st) == 0);
      INFO(entry.path());
      CHECK((st.st_mode & (S_ISUID | S_ISGID)) == 0);
      ++files;
    }
    CHECK(files >= 5);
  }
}
