// The supervisor's command table (CLI11): one function per subcommand.
#pragma once

namespace openshell::supervisor {

// Parses argv and runs the chosen subcommand. Returns the process exit status.
int supervisor_main(int argc, char** argv);

}  // namespace openshell::supervisor
