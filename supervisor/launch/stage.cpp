#include "supervisor/launch/stage.hpp"

namespace openshell::supervisor {

std::string_view stage_name(Stage stage) {
  switch (stage) {
    case Stage::kNone:
      return "none";
    case Stage::kParentGone:
      return "parent-gone";
    case Stage::kCgroupNamespace:
      return "cgroup-namespace";
    case Stage::kNetworkNamespace:
      return "network-namespace";
    case Stage::kMountPrivate:
      return "mount-private";
    case Stage::kOwnerIdentity:
      return "owner-identity";
    case Stage::kMountRoot:
      return "mount-root";
    case Stage::kMountTarget:
      return "mount-target";
    case Stage::kBindMount:
      return "bind-mount";
    case Stage::kMountAttr:
      return "mount-attributes";
    case Stage::kTmpfs:
      return "tmpfs";
    case Stage::kDev:
      return "dev";
    case Stage::kProc:
      return "proc";
    case Stage::kSymlink:
      return "symlink";
    case Stage::kOverlay:
      return "generated-overlay";
    case Stage::kHostname:
      return "hostname";
    case Stage::kPivotRoot:
      return "pivot-root";
    case Stage::kRootReadOnly:
      return "root-read-only";
    case Stage::kCloseFds:
      return "close-fds";
    case Stage::kSetsid:
      return "setsid";
    case Stage::kUserNamespace:
      return "user-namespace";
    case Stage::kIdMapWait:
      return "id-map-wait";
    case Stage::kCapBounding:
      return "capability-bounding-set";
    case Stage::kSetgroups:
      return "setgroups";
    case Stage::kSetgid:
      return "setgid";
    case Stage::kSetuid:
      return "setuid";
    case Stage::kCapDrop:
      return "capability-drop";
    case Stage::kNoNewPrivs:
      return "no-new-privs";
    case Stage::kDumpable:
      return "dumpable";
    case Stage::kRlimitCore:
      return "rlimit-core";
    case Stage::kLandlock:
      return "landlock";
    case Stage::kSeccomp:
      return "seccomp";
    case Stage::kFork:
      return "fork";
    case Stage::kChdir:
      return "chdir";
    case Stage::kNetworkWait:
      return "network-wait";
    case Stage::kExec:
      return "exec";
    case Stage::kAboutToExec:
      return "about-to-exec";
    case Stage::kConnectListener:
      return "connect-listener";
  }
  return "unknown";
}

}  // namespace openshell::supervisor
