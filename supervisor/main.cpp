#include <exception>
#include <iostream>

#include "supervisor/commands.hpp"

int main(int argc, char** argv) {
  try {
    return openshell::supervisor::supervisor_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "openshell-supervisor: internal error: " << e.what() << '\n';
    return 125;
  }
}
