#include "openshelld/config.hpp"

#include <unistd.h>

#include <toml++/toml.h>

namespace openshell::daemon {

Result<Config> load_config(const std::string& path, bool must_exist) {
  Config config;
  if (::access(path.c_str(), F_OK) != 0) {
    if (must_exist) return Error::from_errno("reading " + path);
    return config;
  }
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return Error::invalid(path + ":" + std::to_string(where.line) + ":" +
                          std::to_string(where.column) + ": " + std::string(e.description()));
  }
  auto where = [&](const toml::node& n) {
    return path + ":" + std::to_string(n.source().begin.line) + ":" +
           std::to_string(n.source().begin.column);
  };
  for (auto&& [key, node] : table) {
    const std::string k(key.str());
    std::string* target = nullptr;
    if (k == "state_dir") target = &config.state_dir;
    if (k == "policy_dir") target = &config.policy_dir;
    if (k == "runtime_dir") target = &config.runtime_dir;
    if (k == "log_dir") target = &config.log_dir;
    if (k == "supervisor") target = &config.supervisor;
    if (k == "default_policy") target = &config.default_policy;
    if (k == "driver") target = &config.driver;
    if (target != nullptr) {
      auto value = node.value<std::string>();
      if (!value) return Error::invalid(where(node) + ": " + k + ": must be a string");
      if (k == "driver") {
        if (*value != "auto" && *value != "systemd" && *value != "direct")
          return Error::invalid(where(node) + ": driver: one of auto, systemd, direct");
      } else if (k != "default_policy" && (value->empty() || value->front() != '/')) {
        return Error::invalid(where(node) + ": " + k + ": must be an absolute path");
      }
      *target = *value;
    } else if (k == "max_sandboxes") {
      auto value = node.value<int64_t>();
      if (!value || *value < 1 || *value > 4096)
        return Error::invalid(where(node) + ": max_sandboxes: a number in 1..4096");
      config.max_sandboxes = static_cast<unsigned>(*value);
    } else if (k == "removed_logs_kept") {
      auto value = node.value<int64_t>();
      if (!value || *value < 0 || *value > 100000)
        return Error::invalid(where(node) + ": removed_logs_kept: a number in 0..100000");
      config.removed_logs_kept = static_cast<unsigned>(*value);
    } else {
      return Error::invalid(path + ":" + std::to_string(key.source().begin.line) + ":" +
                            std::to_string(key.source().begin.column) + ": unknown key '" + k +
                            "'");
    }
  }
  return config;
}

}  // namespace openshell::daemon
