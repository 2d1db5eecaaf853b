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

uint32_t sandbox_outside_id(std::string_view sandbox_name) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : sandbox_name) h = (h ^ c) * 16777619u;
  return 2147000000u + h % 1000000u;
}

}  // namespace openshell
