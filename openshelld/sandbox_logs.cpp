#include "openshelld/sandbox_logs.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/event_sink.hpp"
#include "core/log.hpp"
#include "sys/journal.hpp"

namespace openshell::daemon {

std::vector<std::string> SandboxLogs::events(const std::string& sandbox, size_t max,
                                             uint32_t class_uid, bool denied_only,
                                             int64_t since_unix_ms) const {
  // The rotated file (older events) first, then the current one (see JsonlFileSink).
  const std::string file = events_file(sandbox);
  std::deque<std::string> kept;
  for (const std::string& path : {file + ".1", file}) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      auto e = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!e.is_object()) continue;
      if (e.value("time", int64_t{0}) < since_unix_ms) continue;
      if (class_uid != 0 && e.value("class_uid", 0U) != class_uid) continue;
      if (denied_only && e.value("disposition", "") != "Blocked") continue;
      kept.push_back(std::move(line));
      if (kept.size() > max) kept.pop_front();
    }
  }
  return std::vector<std::string>(kept.begin(), kept.end());
}

void SandboxLogs::emit(const ocsf::Event& event, bool journal) const {
  if (auto sink = JsonlFileSink::open(events_file(event.sandbox), UINT64_MAX)) (*sink)->emit(event);
  if (journal) sys::JournalSink().emit(event);
}

void SandboxLogs::retire(const std::string& sandbox) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path from = dir(sandbox);
  if (!fs::exists(fs::symlink_status(from, ec))) return;
  const fs::path removed = log_dir_ + "/removed";
  if (removed_kept_ > 0 && (fs::create_directories(removed, ec), !ec) &&
      ::chmod(removed.c_str(), 0700) == 0) {
    // The removal time first, zero-padded: names sort oldest first.
    char stamp[24];
    std::snprintf(stamp, sizeof stamp, "%013lld-", static_cast<long long>(ocsf::now_ms()));
    fs::rename(from, removed / (stamp + sandbox), ec);
  } else {
    ec = std::make_error_code(std::errc::operation_canceled);
  }
  if (ec) fs::remove_all(from, ec);  // not kept: gone all the same, never left for the name
  if (ec) log::warn("manager", "cannot remove " + from.string() + ": " + ec.message());

  std::vector<std::string> kept;
  for (fs::directory_iterator it(removed, ec), end; !ec && it != end; it.increment(ec))
    kept.push_back(it->path().filename().string());
  if (kept.size() <= removed_kept_) return;
  std::sort(kept.begin(), kept.end());
  for (size_t i = 0; i + removed_kept_ < kept.size(); ++i) fs::remove_all(removed / kept[i], ec);
}

}  // namespace openshell::daemon
