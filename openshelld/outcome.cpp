#include "openshelld/outcome.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/unique_fd.hpp"

namespace openshell::daemon {
namespace {

constexpr uint32_t kProcessActivity = 1007;
constexpr uint32_t kConfigChange = 5019;
constexpr off_t kTailBytes = 256 * 1024;

std::optional<Outcome> ending_of(const nlohmann::json& e) {
  const uint32_t cls = e.value("class_uid", 0U);
  const std::string activity = e.value("activity_name", "");
  // An exec or terminal session's start and end say nothing about the main process.
  if (const auto p = e.find("process"); p != e.end() && p->is_object())
    if (const auto x = p->find("xattributes"); x != p->end() && x->is_object() && x->contains("session"))
      return std::nullopt;
  if (cls == kProcessActivity && activity == "Launch") return Outcome{};  // a start, not an end
  if (cls == kProcessActivity && activity == "Terminate") {
    Outcome o;
    o.exit_status = e.value("exit_code", -1);
    o.reason = "the command exited with status " + std::to_string(*o.exit_status);
    const std::string detail = e.value("status_detail", "");
    if (!detail.empty()) o.reason += " (" + detail + ")";
    return o;
  }
  if (cls == kConfigChange && activity == "Failed" && e.contains("stage")) {
    Outcome o;
    const std::string stage = e.value("stage", "");
    const int err = e.value("errno", 0);
    const std::string message = e.value("message", "");
    if (stage == "exec") {
      // As a shell reports it.
      o.exit_status = err == ENOENT ? 127 : 126;
      o.reason = (err == ENOENT ? "command not found: " : "command cannot be executed: ") + message;
    } else {
      o.reason = "the sandbox could not be built (" + stage + "): " + message;
    }
    return o;
  }
  return std::nullopt;  // anything else says nothing about an ending
}

}  // namespace

std::optional<Outcome> outcome_from_events(std::string_view events) {
  // From the end: the last ending (or launch) is the one that counts.
  while (!events.empty()) {
    if (events.back() == '\n') events.remove_suffix(1);
    const size_t start = events.rfind('\n');
    const std::string_view line =
        start == std::string_view::npos ? events : events.substr(start + 1);
    events = start == std::string_view::npos ? std::string_view() : events.substr(0, start + 1);
    const auto e = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!e.is_object()) continue;  // a torn line
    if (auto o = ending_of(e)) {
      if (!o->exit_status && o->reason.empty()) return std::nullopt;  // launched since
      return o;
    }
  }
  return std::nullopt;
}

std::optional<Outcome> outcome_from_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  const off_t from = st.st_size > kTailBytes ? st.st_size - kTailBytes : 0;
  std::string text(static_cast<size_t>(st.st_size - from), '\0');
  const ssize_t n = ::pread(fd.get(), text.data(), text.size(), from);
  if (n <= 0) return std::nullopt;
  text.resize(static_cast<size_t>(n));
  if (from > 0) text.erase(0, text.find('\n') + 1);  // the first line is cut
  return outcome_from_events(text);
}

}  // namespace openshell::daemon
