// Network namespace helpers.
#pragma once

namespace openshell::sys {

// Brings up "lo" in the calling process's network namespace. Pre-exec safe; 0 or an errno.
int loopback_up_in_child();

}  // namespace openshell::sys
