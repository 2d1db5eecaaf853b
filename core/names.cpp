#include "core/names.hpp"

namespace openshell {

bool valid_sandbox_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
    if (!ok) return false;
  }
  return true;
}

bool valid_policy_name(std::string_view name) { return valid_sandbox_name(name); }

}  // namespace openshell
