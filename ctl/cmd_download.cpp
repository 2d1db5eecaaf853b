// openshellctl download NAME REMOTE [LOCAL]: copies a file or directory tree out of the
// sandbox's workspace. Symlinks are copied only when they stay inside what is copied; a top
// REMOTE may be reached through symlinks that stay inside the workspace. LOCAL defaults to the
// current directory; an existing directory receives the copy under its own name.
#include "ctl/commands.hpp"
#include "ctl/workspace_copy.hpp"

namespace openshell::ctl {
namespace {

struct Options {
  std::string name, remote, local = ".";
};

int download_command(const Global& global, const Options& o) {
  return run_copy(global, o.name, o.remote,
                  [&o](int workspace, const std::string& relative, CopyReport* report) {
                    return download(workspace, relative, o.local, report);
                  });
}

}  // namespace

void add_download(CLI::App& app, const Global& global, Action* run) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("download", "Copy a file or directory out of a sandbox's /sandbox");
  cmd->add_option("name", options->name, "Sandbox name")->type_name("SANDBOX")->required();
  cmd->add_option("remote", options->remote, "What in /sandbox")->required();
  cmd->add_option("local", options->local, "Where on this host (default: here)")->type_name("PATH");
  cmd->callback([&global, run, options] {
    *run = [&global, options] { return download_command(global, *options); };
  });
}

}  // namespace openshell::ctl
