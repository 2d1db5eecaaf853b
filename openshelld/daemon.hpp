// openshelld's entry: arguments, the event loop, sd_notify. main.cpp only catches.
#pragma once

namespace openshell::daemon {

int daemon_main(int argc, char** argv);

}  // namespace openshell::daemon
