#include "openshelld/registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <memory>

#include "core/names.hpp"
#include "core/ocsf.hpp"
#include "core/unique_fd.hpp"
#include "sys/file_util.hpp"

namespace openshell::daemon {
namespace {

using nlohmann::json;

constexpr size_t kMaxRecordBytes = 64 * 1024;
constexpr size_t kMaxPolicyBytes = 1024 * 1024;
constexpr int kRecordVersion = 1;

Status make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return {};
  return Error::from_errno("creating " + path);
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, DirCloser> dir(::opendir(path.c_str()));
  if (!dir) return names;
  while (const dirent* e = ::readdir(dir.get())) {
    if (e->d_name[0] == '.') continue;
    names.emplace_back(e->d_name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<Phase> phase_of(std::string_view text) {
  for (Phase p : {Phase::kCreating, Phase::kRunning, Phase::kStopped, Phase::kFailed})
    if (to_string(p) == text) return p;
  return Error::invalid("unknown phase '" + std::string(text.substr(0, 32)) + "'");
}

}  // namespace

std::string_view to_string(Phase phase) {
  switch (phase) {
    case Phase::kCreating:
      return "creating";
    case Phase::kRunning:
      return "running";
    case Phase::kStopped:
      return "stopped";
    case Phase::kFailed:
      return "failed";
  }
  return "unknown";
}

json to_json(const SandboxRecord& r) {
  json j = {{"version", kRecordVersion},
            {"name", r.name},
            {"owner_uid", r.owner_uid},
            {"policy", r.policy},
            {"revision", r.revision},
            {"command", r.command},
            {"phase", to_string(r.phase)},
            {"reason", r.reason},
            {"created_unix_ms", r.created_unix_ms},
            {"supervisor_pid", r.supervisor_pid},
            {"pinned", r.pinned},
            {"ephemeral", r.ephemeral},
            {"source", r.source},
            {"workdir", r.workdir},
            {"workdir_readonly", r.workdir_readonly},
            {"env", r.env},
            {"providers", r.providers},
            {"routes", r.routes}};
  j["exit_code"] = r.exit_code ? json(*r.exit_code) : json(nullptr);
  return j;
}

Result<SandboxRecord> record_from_json(const json& j) {
  if (!j.is_object()) return Error::invalid("not a JSON object");
  try {
    if (j.at("version").get<int>() != kRecordVersion)
      return Error::invalid("record version " + j.at("version").dump() + " is not " +
                            std::to_string(kRecordVersion));
    SandboxRecord r;
    r.name = j.at("name").get<std::string>();
    if (!valid_sandbox_name(r.name)) return Error::invalid("invalid sandbox name");
    r.owner_uid = j.at("owner_uid").get<uid_t>();
    r.policy = j.at("policy").get<std::string>();
    if (!r.policy.empty() && !valid_policy_name(r.policy))
      return Error::invalid("invalid policy name");
    r.revision = j.at("revision").get<uint64_t>();
    r.command = j.at("command").get<std::vector<std::string>>();
    auto phase = phase_of(j.at("phase").get<std::string>());
    if (!phase) return phase.error();
    r.phase = *phase;
    if (!j.at("exit_code").is_null()) r.exit_code = j.at("exit_code").get<int>();
    r.reason = j.at("reason").get<std::string>();
    r.created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    r.supervisor_pid = j.at("supervisor_pid").get<int>();
    r.pinned = j.value("pinned", false);  // absent in records older than policy set
    r.ephemeral = j.value("ephemeral", false);  // absent in records older than run's own
    // Absent in records older than --workdir and --env.
    r.source = j.value("source", std::string());
    r.workdir = j.value("workdir", std::string());
    if (!r.workdir.empty() && r.workdir.front() != '/') return Error::invalid("relative workdir");
    r.workdir_readonly = j.value("workdir_readonly", false);
    r.env = j.value("env", std::vector<std::string>());
    r.providers = j.value("providers", std::vector<std::string>());  // absent before issue 16
    r.routes = j.value("routes", std::vector<std::string>());
    return r;
  } catch (const json::exception& e) {
    return Error::invalid(std::string("malformed record: ") + e.what());
  }
}

Registry::Registry(std::string state_dir) : state_dir_(std::move(state_dir)) {}

Status Registry::init() const {
  for (const std::string& dir :
       {state_dir_, state_dir_ + "/sandboxes", state_dir_ + "/revisions",
        state_dir_ + "/workspaces"})
    if (auto st = make_dir(dir); !st) return st;
  return {};
}

std::string Registry::record_path(const std::string& name) const {
  return state_dir_ + "/sandboxes/" + name + ".json";
}

std::string Registry::workspace(const std::string& name) const {
  return state_dir_ + "/workspaces/" + name;
}

Registry::Loaded Registry::load_all() const {
  Loaded out;
  for (const auto& file : list_dir(state_dir_ + "/sandboxes")) {
    if (file.size() <= 5 || file.compare(file.size() - 5, 5, ".json") != 0) continue;
    const std::string path = state_dir_ + "/sandboxes/" + file;
    auto text = sys::read_file(path, kMaxRecordBytes + 1);
    if (!text) {
      out.problems.push_back(path + ": " + text.error().message());
      continue;
    }
    if (text->size() > kMaxRecordBytes) {
      out.problems.push_back(path + ": larger than a record can be");
      continue;
    }
    json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      out.problems.push_back(path + ": not valid JSON");
      continue;
    }
    auto record = record_from_json(j);
    if (!record) {
      out.problems.push_back(path + ": " + record.error().message());
      continue;
    }
    if (record->name + ".json" != file) {
      out.problems.push_back(path + ": names sandbox '" + record->name + "'");
      continue;
    }
    out.records.push_back(std::move(*record));
  }
  return out;
}

Status Registry::save(const SandboxRecord& record, sys::Durability durability) const {
  return sys::write_file_atomic(record_path(record.name), to_json(record).dump(2) + "\n", 0600,
                                durability_of(record, durability));
}

Status Registry::sync() const {
  UniqueFd dir(::open(state_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir || ::syncfs(dir.get()) != 0) return Error::from_errno("syncfs " + state_dir_);
  return {};
}

Status Registry::remove(const std::string& name) const {
  const std::string dir = state_dir_ + "/revisions/" + name;
  for (const auto& file : list_dir(dir)) ::unlink((dir + "/" + file).c_str());
  ::rmdir(dir.c_str());
  if (::unlink(record_path(name).c_str()) != 0 && errno != ENOENT)
    return Error::from_errno("removing " + record_path(name));
  return {};
}

std::vector<uint64_t> Registry::revisions(const std::string& name) const {
  std::vector<uint64_t> out;
  for (const auto& file : list_dir(state_dir_ + "/revisions/" + name)) {
    uint64_t n = 0;
    const auto dot = file.find(".toml");
    if (dot == std::string::npos || dot + 5 != file.size()) continue;
    auto [end, ec] = std::from_chars(file.data(), file.data() + dot, n);
    if (ec == std::errc() && end == file.data() + dot && n > 0) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<uint64_t> Registry::add_revision(const std::string& name, const std::string& policy_toml,
                                        const std::string& origin,
                                        sys::Durability durability) const {
  if (policy_toml.size() > kMaxPolicyBytes) return Error::invalid("policy too large");
  const std::string dir = state_dir_ + "/revisions/" + name;
  if (auto st = make_dir(dir); !st) return st.error();
  const auto existing = revisions(name);
  const uint64_t next = existing.empty() ? 1 : existing.back() + 1;
  if (auto st = sys::write_file_atomic(dir + "/" + std::to_string(next) + ".toml", policy_toml,
                                       0600, durability);
      !st)
    return st.error();
  // The revision is the .toml; its note is best effort (history shows "" without it).
  const json meta = {{"time_unix_ms", ocsf::now_ms()}, {"origin", origin.substr(0, 512)}};
  (void)sys::write_file_atomic(dir + "/" + std::to_string(next) + ".json", meta.dump(), 0600,
                               durability);
  return next;
}

std::vector<RevisionInfo> Registry::history(const std::string& name) const {
  std::vector<RevisionInfo> out;
  for (uint64_t n : revisions(name)) {
    RevisionInfo info;
    info.number = n;
    const std::string meta_path =
        state_dir_ + "/revisions/" + name + "/" + std::to_string(n) + ".json";
    if (auto text = sys::read_file(meta_path, 4096)) {
      auto meta = json::parse(*text, nullptr, /*allow_exceptions=*/false);
      if (meta.is_object()) {
        if (auto t = meta.find("time_unix_ms"); t != meta.end() && t->is_number_integer())
          info.time_unix_ms = t->get<int64_t>();
        if (auto o = meta.find("origin"); o != meta.end() && o->is_string())
          info.origin = o->get<std::string>();
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

Result<std::string> Registry::revision(const std::string& name, uint64_t number) const {
  return sys::read_file(revision_path(name, number), kMaxPolicyBytes);
}

std::string Registry::revision_path(const std::string& name, uint64_t number) const {
  return state_dir_ + "/revisions/" + name + "/" + std::to_string(number) + ".toml";
}

}  // namespace openshell::daemon
