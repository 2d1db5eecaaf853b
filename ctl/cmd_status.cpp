// openshellctl status: the daemon's version, driver and how many sandboxes the caller sees.
#include <systemd/sd-bus.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

namespace openshell::ctl {

void add_status(CLI::App& app, const Global& global, Action* run) {
  auto* cmd = app.add_subcommand("status", "Show the daemon's status");
  cmd->callback([&global, run] {
    *run = [&global] {
      auto bus = connect(global.bus);
      if (!bus) return fail(bus.error().message());
      auto reply = call(bus->get(), "Status", [](sd_bus_message*) { return 0; });
      if (!reply) return fail(reply.error().message());
      const char* version = nullptr;
      const char* driver = nullptr;
      uint32_t sandboxes = 0;
      if (sd_bus_message_read(reply->get(), "ssu", &version, &driver, &sandboxes) < 0)
        return fail("unexpected reply to Status");
      if (global.json) {
        std::cout << nlohmann::json{{"version", version}, {"driver", driver},
                                    {"sandboxes", sandboxes}}
                         .dump()
                  << "\n";
      } else {
        std::cout << "version    " << version << "\ndriver     " << driver << "\nsandboxes  "
                  << sandboxes << "\n";
      }
      return kExitOk;
    };
  });
}

}  // namespace openshell::ctl
