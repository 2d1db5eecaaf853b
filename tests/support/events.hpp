// Reading a supervisor's OCSF JSONL event file in tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/harness.hpp"

namespace openshell::testing {

inline std::vector<nlohmann::json> read_events(const std::string& path) {
  std::vector<nlohmann::json> events;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) events.push_back(nlohmann::json::parse(line));
  return events;
}

// The first event with this class uid and activity name, or null.
inline nlohmann::json find_event(const std::vector<nlohmann::json>& events, int class_uid,
                                 const std::string& activity) {
  for (const auto& e : events)
    if (e.value("class_uid", 0) == class_uid && e.value("activity_name", "") == activity) return e;
  return nullptr;
}

}  // namespace openshell::testing
