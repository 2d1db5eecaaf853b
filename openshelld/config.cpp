#include "openshelld/config.hpp"

#include <unistd.h>

#include <toml++/toml.h>

#include "core/names.hpp"
#include "core/net_guard.hpp"
#include "sys/file_util.hpp"

#include <algorithm>
#include <cstdlib>
#include <tuple>

namespace openshell::daemon {
namespace {

// Collects every mistake of the file, each as "file:line:col: key: why".
class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  void problem(const toml::source_region& at, const std::string& what) {
    problems_.push_back({at.begin.line, at.begin.column,
                         path_ + ":" + std::to_string(at.begin.line) + ":" +
                             std::to_string(at.begin.column) + ": " + what});
  }
  // In file order (TOML++ walks a table in key order).
  [[nodiscard]] std::string all_problems() {
    std::sort(problems_.begin(), problems_.end());
    std::string all;
    for (const auto& p : problems_) all += (all.empty() ? "" : "\n") + std::get<2>(p);
    return all;
  }
  [[nodiscard]] bool ok() const { return problems_.empty(); }

  void path_value(const toml::node& n, const std::string& key, std::string& out, bool absolute) {
    auto value = n.value<std::string>();
    if (!value) return problem(n.source(), key + ": must be a string");
    if (absolute && (value->empty() || value->front() != '/'))
      return problem(n.source(), key + ": must be an absolute path");
    out = *value;
  }
  void count_value(const toml::node& n, const std::string& key, int64_t min, int64_t max,
                   unsigned& out) {
    auto value = n.value<int64_t>();
    if (!n.is_integer() || !value || *value < min || *value > max)
      return problem(n.source(), key + ": a number in " + std::to_string(min) + ".." +
                                     std::to_string(max));
    out = static_cast<unsigned>(*value);
  }
  // A [resources] value (policy syntax: "4G", "200%", 4096, "max") into `out`.
  void resource_value(const toml::node& n, const std::string& key, const std::string& resource,
                      policy::Resources& out) {
    std::string text;
    if (const auto* s = n.as_string()) {
      text = s->get();
    } else if (const auto* i = n.as_integer()) {
      text = std::to_string(i->get());
    } else {
      return problem(n.source(), key + ": must be a string or an integer");
    }
    if (auto why = policy::set_resource(out, resource, text)) problem(n.source(), key + ": " + *why);
  }

 private:
  std::string path_;
  std::vector<std::tuple<uint32_t, uint32_t, std::string>> problems_;
};

// The caps on a non-root caller's policy, by their config key.
constexpr std::pair<const char*, const char*> kCaps[] = {
    {"max_memory", "memory_max"}, {"max_cpu", "cpu_max"},         {"max_pids", "pids_max"},
    {"max_tmp_size", "tmp_size"}, {"max_shm_size", "shm_size"},
};

}  // namespace

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
  Reader r(path);
  for (auto&& [key, node] : table) {
    const std::string k(key.str());
    if (k == "state_dir") {
      r.path_value(node, k, config.state_dir, true);
    } else if (k == "policy_dir") {
      r.path_value(node, k, config.policy_dir, true);
    } else if (k == "runtime_dir") {
      r.path_value(node, k, config.runtime_dir, true);
    } else if (k == "log_dir") {
      r.path_value(node, k, config.log_dir, true);
    } else if (k == "supervisor") {
      r.path_value(node, k, config.supervisor, true);
    } else if (k == "default_policy") {
      r.path_value(node, k, config.default_policy, false);
    } else if (k == "driver") {
      std::string driver;
      r.path_value(node, k, driver, false);
      if (driver == "auto" || driver == "systemd" || driver == "direct") {
        config.driver = driver;
      } else if (node.is_string()) {
        r.problem(node.source(), "driver: one of auto, systemd, direct");
      }
    } else if (k == "max_sandboxes") {
      r.count_value(node, k, 1, 4096, config.max_sandboxes);
    } else if (k == "max_sandboxes_per_user") {
      r.count_value(node, k, 1, 4096, config.max_sandboxes_per_user);
    } else if (k == "removed_logs_kept") {
      r.count_value(node, k, 0, 100000, config.removed_logs_kept);
    } else if (k == "upstream_ca") {
      const toml::array* files = node.as_array();
      if (files == nullptr) {
        r.problem(node.source(), k + ": must be an array of absolute paths");
        continue;
      }
      for (auto&& file : *files) {
        std::string pem;
        r.path_value(file, k, pem, true);
        if (pem.empty()) continue;
        if (::access(pem.c_str(), R_OK) != 0) {
          r.problem(file.source(), k + ": cannot read " + pem);
          continue;
        }
        config.upstream_ca.push_back(pem);
      }
    } else if (k == "upstream_proxy") {
      std::string url;
      r.path_value(node, k, url, false);
      if (url.empty()) continue;
      if (auto parsed = net::parse_upstream_proxy(url); !parsed)
        r.problem(node.source(), k + ": " + parsed.error().message());
      else
        config.upstream_proxy = url;
    } else if (k == "default_routes") {
      const toml::array* names = node.as_array();
      if (names == nullptr) {
        r.problem(node.source(), k + ": must be an array of route names");
        continue;
      }
      for (auto&& n : *names) {
        const auto* name = n.as_string();
        if (name == nullptr || !valid_sandbox_name(name->get()))
          r.problem(n.source(), k + ": route names are 1-63 of a-z, 0-9 and '-'");
        else
          config.default_routes.push_back(name->get());
      }
    } else if (k == "providers") {
      const toml::table* all = node.as_table();
      if (all == nullptr) {
        r.problem(node.source(), k + ": must be a table of [providers.NAME] tables");
        continue;
      }
      for (auto&& [pname, pnode] : *all) {
        const std::string where = k + "." + std::string(pname.str());
        const toml::table* t = pnode.as_table();
        const auto* type = t != nullptr ? t->get_as<std::string>("type") : nullptr;
        const auto* creds = t != nullptr ? t->get_as<toml::table>("credentials") : nullptr;
        if (t == nullptr || type == nullptr || creds == nullptr || t->size() != 2) {
          r.problem(pnode.source(), where + ": needs type and credentials = { KEY = \"file\" }, "
                                            "nothing else");
          continue;
        }
        providers::Provider p;
        p.name = std::string(pname.str());
        const auto parsed = providers::parse_type(type->get());
        if (!parsed) {
          r.problem(type->source(), where + ".type: generic, github, openai, anthropic or nvidia");
          continue;
        }
        p.type = *parsed;
        const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
        for (auto&& [ckey, cnode] : *creds) {
          const auto* file = cnode.as_string();
          const std::string name = file != nullptr ? file->get() : "";
          if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
            r.problem(cnode.source(), where + ".credentials: a systemd credential's name");
            continue;
          }
          if (dir == nullptr) {
            r.problem(cnode.source(), where + ": $CREDENTIALS_DIRECTORY is not set (give the "
                                              "unit LoadCredential=" + name + ":...)");
            continue;
          }
          auto value = sys::read_file(std::string(dir) + "/" + name, providers::kMaxValueBytes);
          if (!value) {
            r.problem(cnode.source(), where + ": systemd credential " + name + ": " +
                                          value.error().message());
            continue;
          }
          while (!value->empty() && (value->back() == '\n' || value->back() == '\r'))
            value->pop_back();
          p.credentials[std::string(ckey.str())] = std::move(*value);
        }
        if (auto st = providers::validate(p); !st) {
          r.problem(pnode.source(), where + ": " + st.error().message());
          continue;
        }
        config.providers.push_back(std::move(p));
      }
    } else if (k == "sandbox_defaults") {
      const toml::table* defaults = node.as_table();
      if (defaults == nullptr) {
        r.problem(node.source(), k + ": must be a table");
        continue;
      }
      for (auto&& [dkey, dnode] : *defaults)
        r.resource_value(dnode, k + "." + std::string(dkey.str()), std::string(dkey.str()),
                         config.sandbox_defaults);
    } else {
      bool cap = false;
      for (const auto& [name, resource] : kCaps) {
        if (k != name) continue;
        cap = true;
        r.resource_value(node, k, resource, config.user_caps);
      }
      if (!cap) r.problem(key.source(), "unknown key '" + k + "'");
    }
  }
  if (!r.ok()) return Error::invalid(r.all_problems());
  return config;
}

}  // namespace openshell::daemon
