// print_ids : prints the identity a sandboxed process ends up with, one fact per line:
//   uid=R euid=E gid=G egid=EG groups=a,b     (no supplementary groups: "groups=")
//   cwd=PATH                                  (or cwd=errno=ENAME)
//   hostname=NAME                             (or hostname=errno=ENAME)
// Tests copy it, make the copy setuid root and check that in a sandbox euid stays
// unprivileged (no_new_privs, nosuid mounts), so it must not depend on anything at runtime.
#include <limits.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "probe_output.hpp"

namespace {

using openshell::probe::errno_name;
using openshell::probe::usage_exit;

void print_groups() {
  std::printf(" groups=");
  const int count = getgroups(0, nullptr);
  if (count <= 0) return;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  const int got = getgroups(count, groups.data());
  for (int i = 0; i < got; ++i) {
    std::printf(i == 0 ? "%u" : ",%u", static_cast<unsigned>(groups[static_cast<std::size_t>(i)]));
  }
}

}  // namespace

int main(int argc, char** /*argv*/) {
  if (argc != 1) usage_exit("print_ids");
  std::printf("uid=%u euid=%u gid=%u egid=%u", static_cast<unsigned>(getuid()),
              static_cast<unsigned>(geteuid()), static_cast<unsigned>(getgid()),
              static_cast<unsigned>(getegid()));
  print_groups();
  std::printf("\n");

  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) != nullptr) {
    std::printf("cwd=%s\n", cwd);
  } else {
    std::printf("cwd=errno=%s\n", errno_name(errno));
  }

  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host) == 0) {
    std::printf("hostname=%s\n", host);
  } else {
    std::printf("hostname=errno=%s\n", errno_name(errno));
  }
  return 0;
}
