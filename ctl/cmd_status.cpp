// openshellctl status: the daemon's version, driver, how many sandboxes the caller sees, and
// what the kernel offers sandboxes (Landlock ABI, cgroups, nf_tables, user namespaces).
#include <systemd/sd-bus.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <utility>
#include <vector>
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
      sd_bus_message* r = reply->get();
      if (sd_bus_message_read(r, "ssu", &version, &driver, &sandboxes) < 0 ||
          sd_bus_message_enter_container(r, 'a', "{ss}") < 0)
        return fail("unexpected reply to Status");
      std::vector<std::pair<std::string, std::string>> kernel;
      const char* feature = nullptr;
      const char* found = nullptr;
      int rc;
      while ((rc = sd_bus_message_read(r, "{ss}", &feature, &found)) > 0)
        kernel.emplace_back(feature, found);
      if (rc < 0) return fail("unexpected reply to Status");
      if (global.json) {
        nlohmann::json k = nlohmann::json::object();
        for (const auto& [f, v] : kernel) k[f] = v;
        std::cout << nlohmann::json{{"version", version}, {"driver", driver},
                                    {"sandboxes", sandboxes}, {"kernel", k}}
                         .dump()
                  << "\n";
      } else {
        std::printf("%-11s%s\n%-11s%s\n%-11s%u\n", "version", version, "driver", driver,
                    "sandboxes", sandboxes);
        for (const auto& [f, v] : kernel) std::printf("%-11s%s\n", f.c_str(), v.c_str());
      }
      return kExitOk;
    };
  });
}

}  // namespace openshell::ctl
