#include "sys/caps.hpp"

#include <linux/securebits.h>
#include <sys/prctl.h>

#include <cerrno>

namespace openshell::sys {

Result<CapDropPlan> CapDropPlan::create() {
  cap_t empty = cap_init();
  if (empty == nullptr) return Error::from_errno("cap_init");
  // The kernel may know more capabilities than our headers: drop every bit it reports.
  int last = static_cast<int>(cap_max_bits()) - 1;
  return CapDropPlan(empty, last);
}

CapDropPlan::~CapDropPlan() {
  if (empty_ != nullptr) cap_free(empty_);
}

int CapDropPlan::drop_bounding_in_child() const {
  for (int cap = 0; cap <= last_cap_; ++cap) {
    if (cap_drop_bound(static_cast<cap_value_t>(cap)) != 0 && errno != EINVAL) return errno;
  }
  const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                             SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                             SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (::prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) return errno;
  return 0;
}

int CapDropPlan::drop_all_in_child() const {
  if (cap_reset_ambient() != 0) return errno;
  if (cap_set_proc(empty_) != 0) return errno;
  return 0;
}

}  // namespace openshell::sys
