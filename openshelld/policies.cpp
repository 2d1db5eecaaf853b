#include "openshelld/policies.hpp"

#include <dirent.h>

#include <algorithm>
#include <memory>

#include "core/names.hpp"
#include "core/policy.hpp"
#include "sys/file_util.hpp"

namespace openshell::daemon {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

}  // namespace

PolicySet load_policies(const std::string& dir) {
  PolicySet set;
  std::unique_ptr<DIR, DirCloser> d(::opendir(dir.c_str()));
  if (!d) {
    set.diagnostics.push_back(dir + ": cannot read the policy directory");
    return set;
  }
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string file = e->d_name;
    if (file.size() > 5 && file.compare(file.size() - 5, 5, ".toml") == 0) names.push_back(file);
  }
  std::sort(names.begin(), names.end());
  if (names.size() > kMaxPolicies) {
    set.diagnostics.push_back(dir + ": more than " + std::to_string(kMaxPolicies) + " policies");
    return set;
  }
  for (const auto& file : names) {
    const std::string name = file.substr(0, file.size() - 5);
    const std::string path = dir + "/" + file;
    if (!valid_policy_name(name)) {
      set.diagnostics.push_back(path + ": '" + name +
                                "' is not a policy name (1-63 of a-z, 0-9 and '-')");
      continue;
    }
    auto text = sys::read_file(path, policy::kMaxPolicyFileBytes + 1);
    if (!text) {
      set.diagnostics.push_back(path + ": " + text.error().message());
      continue;
    }
    if (text->size() > policy::kMaxPolicyFileBytes) {
      set.diagnostics.push_back(path + ": larger than " +
                                std::to_string(policy::kMaxPolicyFileBytes) + " bytes");
      continue;
    }
    auto parsed = policy::parse_policy_string(*text, path);
    for (const auto& diag : parsed.diagnostics) set.diagnostics.push_back(diag.to_string());
    if (parsed.ok()) set.files[name] = PolicyFile{name, path, std::move(*text), parsed.policy};
  }
  return set;
}

}  // namespace openshell::daemon
