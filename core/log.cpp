#include "core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace openshell::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_output_fd{STDERR_FILENO};

bool journal_prefixes() {
  static const bool enabled = std::getenv("JOURNAL_STREAM") != nullptr;
  return enabled;
}

}  // namespace

void set_min_level(Level level) { g_min_level = static_cast<int>(level); }
void set_output_fd(int fd) { g_output_fd = fd; }
Level min_level() { return static_cast<Level>(g_min_level.load()); }

void write(Level level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) > g_min_level.load()) return;
  std::string line;
  line.reserve(message.size() + component.size() + 32);
  if (journal_prefixes()) {
    line += '<';
    line += static_cast<char>('0' + static_cast<int>(level));
    line += '>';
  }
  line += "openshell ";
  line += component;
  line += ": ";
  line += message;
  line += '\n';
  // One write per line so concurrent writers do not interleave within a line.
  (void)!::write(g_output_fd.load(), line.data(), line.size());
}

}  // namespace openshell::log
