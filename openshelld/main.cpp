#include <exception>
#include <iostream>

#include "openshelld/daemon.hpp"

int main(int argc, char** argv) {
  try {
    return openshell::daemon::daemon_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "openshelld: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "openshelld: unexpected error\n";
  }
  return 1;
}
