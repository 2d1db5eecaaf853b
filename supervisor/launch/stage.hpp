// What the pre-exec child reports when a step fails: a fixed-size record sent on a CLOEXEC
// SEQPACKET socket, then _exit. The parent turns it into a typed error and an event.
#pragma once

#include <cstdint>
#include <string_view>

namespace openshell::supervisor {

enum class Stage : int32_t {
  kNone = 0,
  kParentGone,
  kCgroupNamespace,
  kNetworkNamespace,
  kMountPrivate,
  kOwnerIdentity,  // taking on, or giving back, the owner's credentials to open bind sources
  kMountRoot,
  kMountTarget,  // creating a mount point; detail = mount index
  kBindMount,    // detail = mount index
  kMountAttr,    // detail = mount index
  kTmpfs,        // detail = mount index
  kDev,
  kProc,
  kSymlink,  // detail = mount index
  kOverlay,  // a directory of generated files made an overlay; detail = mount index
  kHostname,
  kPivotRoot,
  kRootReadOnly,
  kCloseFds,
  kSetsid,
  kUserNamespace,
  kIdMapWait,
  kCapBounding,
  kSetgroups,
  kSetgid,
  kSetuid,
  kCapDrop,
  kNoNewPrivs,
  kDumpable,
  kRlimitCore,
  kLandlock,  // detail = rule index or -1
  kSeccomp,
  kFork,
  kChdir,
  kNetworkWait,  // the agent waiting for the sandbox's network to be captured
  kExec,
  kAboutToExec,  // not a failure: the agent announces itself (its pid travels as credentials)
  // Not a failure either: init hands over the connect listener (SCM_RIGHTS), or says with err
  // why there is none (a kernel without seccomp user notification); the sandbox runs either way.
  kConnectListener,
};

struct StageRecord {
  Stage stage = Stage::kNone;
  int32_t err = 0;
  int32_t detail = -1;
};

std::string_view stage_name(Stage stage);

}  // namespace openshell::supervisor
