#include "openshelld/daemon.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>

#include "core/log.hpp"
#include "openshelld/bus.hpp"
#include "openshelld/config.hpp"
#include "openshelld/driver.hpp"
#include "openshelld/manager.hpp"
#include "sys/process.hpp"

namespace openshell::daemon {
namespace {

constexpr const char* kDefaultConfig = "/etc/openshell/openshelld.toml";
constexpr std::string_view kComponent = "openshelld";

}  // namespace

int daemon_main(int argc, char** argv) {
  CLI::App app{"openshelld: the openshell daemon (org.openshell.Manager1)"};
  std::string config_path = kDefaultConfig;
  std::string bus_address;
  app.add_option("--config", config_path, "Daemon configuration (openshelld.toml)");
  app.add_option("--bus", bus_address, "Bus address instead of the system bus (tests)");
  app.set_version_flag("--version", std::string(OPENSHELL_VERSION));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "openshelld: " << e.what() << "\n";
    return 2;
  }

  // Provider values pass through here (the bus, the store, systemd credentials): no core dump
  // of ours may write them to disk, as none of a supervisor's may.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    log::error(kComponent, std::string("cannot make openshelld non-dumpable: ") + std::strerror(errno));
    return 1;
  }
  auto config = load_config(config_path, config_path != kDefaultConfig);
  if (!config) {
    log::error(kComponent, config.error().message());
    return 1;
  }
  sd_event* event = nullptr;
  if (int rc = sd_event_default(&event); rc < 0) {
    log::error(kComponent, std::string("sd_event: ") + std::strerror(-rc));
    return 1;
  }
  // SIGTERM and SIGINT end the loop; sandboxes keep running (they outlive the daemon).
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  sd_event_add_signal(event, nullptr, SIGTERM, nullptr, nullptr);
  sd_event_add_signal(event, nullptr, SIGINT, nullptr, nullptr);
  // Detached supervisors whose parent exits come to us, not to a PID 1 that may reap late (or
  // never, outside systemd): their zombies are ours to clear.
  (void)::prctl(PR_SET_CHILD_SUBREAPER, 1);
  sd_event_add_signal(
      event, nullptr, SIGCHLD,
      [](sd_event_source*, const signalfd_siginfo*, void*) -> int {
        sys::reap_exited_children();
        return 0;
      },
      nullptr);

  int status = 0;
  {
    auto driver = make_driver(*config, event);
    if (!driver) {
      log::error(kComponent, driver.error().message());
      sd_event_unref(event);
      return 1;
    }
    Manager manager(*config, event, std::move(*driver));
    // The name first: a second daemon on the same bus must leave the first one's sandboxes
    // alone (starting adopts them, and removes the ended runs among them). Calls wait in the
    // bus until the loop runs, after the start.
    auto bus = BusService::start(event, bus_address, manager);
    if (!bus) {
      log::error(kComponent, bus.error().message());
      sd_event_unref(event);
      return 1;
    }
    auto problems = manager.start();
    if (!problems) {
      log::error(kComponent, problems.error().message());
      sd_event_unref(event);
      return 1;
    }
    for (const auto& p : *problems) log::warn(kComponent, "skipped state: " + p);
    // With WatchdogSec= in the unit, the loop pings systemd at half the interval; a loop stuck
    // for longer gets the daemon restarted (its sandboxes keep running and are re-adopted).
    (void)sd_event_set_watchdog(event, 1);
    sd_notify(0, "READY=1\nSTATUS=serving org.openshell.Manager1");
    log::info(kComponent, "ready");
    status = sd_event_loop(event) < 0 ? 1 : 0;
    sd_notify(0, "STOPPING=1");
  }
  sd_event_unref(event);
  return status;
}

}  // namespace openshell::daemon
