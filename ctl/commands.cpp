#include "ctl/commands.hpp"

#include <iostream>
#include <string_view>

namespace openshell::ctl {

int fail(const std::string& message) {
  std::cerr << "openshellctl: " << message << "\n";
  return kExitFailed;
}

int fail_command(const Error& error) {
  // The daemon's text as it is (its code only stands for the exit status).
  std::cerr << "openshellctl: " << error.context << "\n";
  if (error.code == std::errc::no_such_file_or_directory) return kExitNotFound;
  if (error.code == std::errc::permission_denied) return kExitCannotExecute;
  return kExitFailed;
}

int ctl_main(int argc, char** argv) {
  CLI::App app{"openshellctl: drive openshelld (sandboxes, policies, exec)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(OPENSHELL_VERSION));
  Global global;
  app.add_option("--bus", global.bus, "Bus address instead of the system bus");
  app.add_flag("--json", global.json, "Machine-readable output");
  // --bus and --json before or after the subcommand (`openshellctl sandbox list --json`):
  // subcommands, made after this and inheriting it, pass options they lack up to here.
  app.fallthrough();
  Action run;
  add_status(app, global, &run);
  add_sandbox(app, global, &run);
  add_exec(app, global, &run);
  add_connect(app, global, &run);
  add_upload(app, global, &run);
  add_download(app, global, &run);
  add_policy(app, global, &run);
  add_run(app, global, &run);
  add_logs(app, global, &run);
  add_provider(app, global, &run);
  add_inference(app, global, &run);
  // Not a command (it is in no --help): what the shell completions ask.
  if (argc >= 2 && std::string_view(argv[1]) == "__complete") {
    for (const auto& candidate : complete(app, std::vector<std::string>(argv + 2, argv + argc)))
      std::cout << candidate << "\n";
    return kExitOk;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, not a help dump.
    std::cerr << "openshellctl: " << e.what() << " (try --help)\n";
    return kExitUsage;
  }
  return run ? run() : kExitUsage;
}

}  // namespace openshell::ctl
