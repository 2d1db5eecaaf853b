// The one log facade. Library code logs at debug at most; the caller that decides logs once.
// Security facts are OCSF events (core/ocsf.hpp), never log lines.
// Output: stderr (or set_output_fd); when JOURNAL_STREAM is set (we run under systemd) each line carries the
// sd-daemon "<N>" priority prefix, which journald turns into the PRIORITY field.
#pragma once

#include <string_view>

namespace openshell::log {

enum class Level { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };

void set_min_level(Level level);
// Where lines go (default: stderr), e.g. a log file when stderr belongs to someone else.
void set_output_fd(int fd);
[[nodiscard]] Level min_level();

// component names the area ("supervisor", "policy", "cgroup", ...).
void write(Level level, std::string_view component, std::string_view message);

inline void error(std::string_view c, std::string_view m) { write(Level::kError, c, m); }
inline void warn(std::string_view c, std::string_view m) { write(Level::kWarning, c, m); }
inline void info(std::string_view c, std::string_view m) { write(Level::kInfo, c, m); }
inline void debug(std::string_view c, std::string_view m) { write(Level::kDebug, c, m); }

}  // namespace openshell::log
