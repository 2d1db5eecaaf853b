#include <exception>
#include <iostream>

#include "ctl/commands.hpp"

int main(int argc, char** argv) {
  try {
    return openshell::ctl::ctl_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "openshellctl: " << e.what() << "\n";
  }
  return 1;
}
