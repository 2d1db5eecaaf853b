#include "openshelld/features.hpp"

#include "sys/cgroup.hpp"
#include "sys/file_util.hpp"
#include "sys/landlock.hpp"
#include "sys/nft.hpp"

namespace openshell::daemon {
namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string cgroup_summary() {
  auto layout = sys::detect_cgroup_layout();
  if (!layout) return "none (" + layout.error().message() + ")";
  std::string controllers;
  for (const char* c : {"memory", "pids", "cpu"})
    if (layout->has_controller(c)) controllers += std::string(controllers.empty() ? "" : ",") + c;
  if (controllers.empty()) controllers = "no controllers";
  const bool v2 = layout->version == sys::CgroupVersion::kV2;
  const bool hybrid = v2 ? !layout->v1_mounts.empty() : !layout->v2_root.empty();
  return std::string(v2 ? "v2" : "v1") + (hybrid ? " (hybrid)" : "") + ": " + controllers;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> kernel_features() {
  std::vector<std::pair<std::string, std::string>> out;
  const int abi = sys::landlock_abi();
  out.emplace_back("landlock", abi > 0 ? "ABI " + std::to_string(abi) : "unavailable");
  out.emplace_back("cgroup", cgroup_summary());
  // A read-only query of our own namespace: it works when nf_tables does (built in, or loaded
  // on demand by this very query).
  auto nft = sys::nft_apply("list tables");
  out.emplace_back("nftables", nft ? "available" : "unavailable (" + nft.error().message() + ")");
  auto max = sys::read_file("/proc/sys/user/max_user_namespaces", 64);
  const std::string users = max ? trimmed(*max) : std::string("?");
  out.emplace_back("userns", max && users != "0" ? "yes (at most " + users + ")" : "no");
  return out;
}

}  // namespace openshell::daemon
