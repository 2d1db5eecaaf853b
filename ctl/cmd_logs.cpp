// openshellctl logs NAME [-n N] [-f] [--since D] [--class C] [--denied] [--json]: the sandbox's
// OCSF events, read through the daemon (the files are root's). Human lines by default:
// "TIME CLASS message"; --json prints the events as stored, one per line.
#include <systemd/sd-bus.h>

#include <chrono>
#include <ctime>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

namespace openshell::ctl {
namespace {

struct Options {
  std::string name;
  unsigned lines = 20;
  bool follow = false;
  std::string since;  // 30s, 10m, 2h, 1d
  std::string klass;  // a class uid or network, http, dns, process, finding, config, inference
  bool denied = false;
};

const std::map<std::string, uint32_t> kClasses = {{"network", 4001}, {"http", 4002},
                                                   {"dns", 4003},     {"process", 1007},
                                                   {"finding", 2004}, {"config", 5019},
                                                   {"inference", 6003}};

bool parse_class(const std::string& text, uint32_t* out) {
  if (text.empty()) return true;
  if (auto it = kClasses.find(text); it != kClasses.end()) {
    *out = it->second;
    return true;
  }
  try {
    size_t used = 0;
    const unsigned long v = std::stoul(text, &used);
    if (used != text.size() || v == 0 || v > 999999) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

bool parse_since(const std::string& text, int64_t* since_ms) {
  if (text.empty()) return true;
  try {
    size_t used = 0;
    const long long n = std::stoll(text, &used);
    const std::string unit = text.substr(used);
    long long seconds = 0;
    if (unit == "s") seconds = n;
    else if (unit == "m") seconds = n * 60;
    else if (unit == "h") seconds = n * 3600;
    else if (unit == "d") seconds = n * 86400;
    else return false;
    if (n < 0 || n > 100000) return false;
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    *since_ms = now - seconds * 1000;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string human(const nlohmann::json& e) {
  const int64_t ms = e.value("time", int64_t{0});
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  std::string line = std::string(when) + "  " + e.value("class_name", "?");
  if (e.contains("disposition")) line += " [" + e.value("disposition", "") + "]";
  line += "  " + e.value("message", "");
  if (e.contains("status_detail") && e.value("disposition", "") == "Blocked")
    line += ": " + e.value("status_detail", "");
  return line;
}

int logs(const Global& global, const Options& o) {
  uint32_t klass = 0;
  int64_t since = 0;
  if (!parse_class(o.klass, &klass)) {
    std::cerr << "openshellctl: logs: --class takes a number or one of network, http, dns, "
                 "process, finding, config, inference\n";
    return kExitUsage;
  }
  if (!parse_since(o.since, &since)) {
    std::cerr << "openshellctl: logs: --since takes a duration like 30s, 10m, 2h or 1d\n";
    return kExitUsage;
  }
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  // -f: the events after the last one shown, every second, until interrupted.
  int64_t last_time = since;
  size_t seen_at_last = 0;  // events already shown with time == last_time
  for (bool first = true;; first = false) {
    auto reply = call(bus->get(), "ReadEvents", [&](sd_bus_message* m) {
      return sd_bus_message_append(m, "suubx", o.name.c_str(), first ? o.lines : 10000U, klass,
                                   o.denied ? 1 : 0, last_time);
    });
    if (!reply) return fail(reply.error().message());
    if (sd_bus_message_enter_container(reply->get(), 'a', "s") < 0) return fail("unexpected reply");
    const char* s = nullptr;
    size_t same = 0;
    int64_t newest = last_time;
    std::vector<std::string> batch;
    while (sd_bus_message_read(reply->get(), "s", &s) > 0) batch.emplace_back(s);
    for (const auto& line : batch) {
      auto e = nlohmann::json::parse(line, nullptr, false);
      const int64_t t = e.value("time", int64_t{0});
      if (!first && t == last_time && same++ < seen_at_last) continue;  // shown already
      if (global.json) {
        std::cout << line << "\n";
      } else {
        std::cout << human(e) << "\n";
      }
      newest = std::max(newest, t);
    }
    std::cout.flush();
    if (!o.follow) return kExitOk;
    if (newest != last_time) {
      seen_at_last = 0;
      for (const auto& line : batch)
        if (nlohmann::json::parse(line, nullptr, false).value("time", int64_t{0}) == newest)
          ++seen_at_last;
      last_time = newest;
    } else {
      seen_at_last = std::max(seen_at_last, same);
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

std::vector<std::string> log_class_names() {
  std::vector<std::string> names;
  for (const auto& [name, uid] : kClasses) names.push_back(name);
  return names;
}

void add_logs(CLI::App& app, const Global& global, Action* run) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("logs", "Show a sandbox's events (OCSF)");
  cmd->add_option("name", options->name, "Sandbox name")->type_name("SANDBOX")->required();
  cmd->add_option("-n,--lines", options->lines, "How many of the newest events (default 20)")
      ->check(CLI::Range(1, 10000));
  cmd->add_flag("-f,--follow", options->follow, "Keep printing new events");
  cmd->add_option("--since", options->since, "Only events newer than this (30s, 10m, 2h, 1d)");
  cmd->add_option("--class", options->klass,
                  "Only this class: network, http, dns, process, finding, config, inference, or a uid");
  cmd->add_flag("--denied", options->denied, "Only blocked connections and queries");
  cmd->callback([&global, run, options] { *run = [&global, options] { return logs(global, *options); }; });
}

}  // namespace openshell::ctl
