// Capability dropping for the pre-exec child, through libcap. The empty capability state is
// allocated in the parent; the child only hands it to the kernel.
#pragma once

#include <sys/capability.h>

#include "core/result.hpp"

namespace openshell::sys {

class CapDropPlan {
 public:
  static Result<CapDropPlan> create();
  CapDropPlan(CapDropPlan&& other) noexcept : empty_(other.empty_), last_cap_(other.last_cap_) {
    other.empty_ = nullptr;
  }
  CapDropPlan& operator=(CapDropPlan&&) = delete;
  CapDropPlan(const CapDropPlan&) = delete;
  ~CapDropPlan();

  // Clears the bounding set and locks the securebits that would let root regain capabilities.
  // Needs CAP_SETPCAP: call before changing uid. Returns 0 or an errno.
  int drop_bounding_in_child() const;
  // Clears effective, permitted, inheritable and ambient sets. Returns 0 or an errno.
  int drop_all_in_child() const;

 private:
  CapDropPlan(cap_t empty, int last_cap) : empty_(empty), last_cap_(last_cap) {}
  cap_t empty_;
  int last_cap_;
};

}  // namespace openshell::sys
