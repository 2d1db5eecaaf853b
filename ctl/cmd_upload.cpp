// openshellctl upload NAME LOCAL [REMOTE]: copies a file or directory tree into the sandbox's
// workspace (/sandbox), refusing anything the agent put there to lead the copy outside it
// (workspace_copy.hpp). REMOTE defaults to /sandbox/<basename of LOCAL>; an existing directory
// receives the copy under its own name.
#include "ctl/commands.hpp"
#include "ctl/workspace_copy.hpp"

namespace openshell::ctl {
namespace {

struct Options {
  std::string name, local, remote;
};

int upload_command(const Global& global, const Options& o) {
  return run_copy(global, o.name, o.remote,
                  [&o](int workspace, const std::string& relative, CopyReport* report) {
                    return upload(o.local, workspace, relative, report);
                  });
}

}  // namespace

void add_upload(CLI::App& app, const Global& global, Action* run) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("upload", "Copy a file or directory into a sandbox's /sandbox");
  cmd->add_option("name", options->name, "Sandbox name")->type_name("SANDBOX")->required();
  cmd->add_option("local", options->local, "File or directory on this host")->type_name("PATH")->required();
  cmd->add_option("remote", options->remote, "Where in /sandbox (default: its own name)");
  cmd->callback([&global, run, options] {
    *run = [&global, options] { return upload_command(global, *options); };
  });
}

}  // namespace openshell::ctl
