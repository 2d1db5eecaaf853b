// Main for privileged test binaries. Catch2 v2 has no SKIP: when a prerequisite is missing we
// print why and exit 77, which CTest reports as skipped; with OPENSHELL_REQUIRE_PRIVILEGED=1
// (CI, which runs as root with namespaces) a missing prerequisite is a failure instead.
#define CATCH_CONFIG_RUNNER
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

namespace {

std::string missing_prerequisite() {
  if (geteuid() != 0) return "not running as root";
  pid_t pid = fork();
  if (pid == 0) {
    _exit(unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) == 0 ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "user/mount/pid/net namespaces are not available";
  if (access("/sys/fs/cgroup", F_OK) != 0) return "no cgroup filesystem at /sys/fs/cgroup";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string why = missing_prerequisite();
  if (!why.empty()) {
    const char* require = std::getenv("OPENSHELL_REQUIRE_PRIVILEGED");
    const bool required = require != nullptr && std::string(require) == "1";
    std::cerr << (required ? "FAIL" : "SKIP")
              << ": privileged test needs root and namespaces: " << why << '\n';
    return required ? 1 : 77;
  }
  return Catch::Session().run(argc, argv);
}
