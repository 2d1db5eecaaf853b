#include "supervisor/launch/exec_wire.hpp"

#include <cstring>

namespace openshell::supervisor {

std::string encode_exec_request(uint32_t id, const std::vector<std::string>& argv,
                                const std::vector<std::string>& env, const std::string& cwd,
                                bool tty) {
  if (argv.empty() || argv.size() > kExecMaxArgs || env.size() > kExecMaxArgs) return {};
  ExecHeader header;
  header.id = id;
  header.argc = static_cast<uint32_t>(argv.size());
  header.envc = static_cast<uint32_t>(env.size());
  header.flags = tty ? kExecFlagTty : 0;
  std::string out(reinterpret_cast<const char*>(&header), sizeof header);
  auto add = [&out](const std::string& s) {
    if (s.find('\0') != std::string::npos) return false;
    out += s;
    out += '\0';
    return true;
  };
  if (!add(cwd)) return {};
  for (const auto& a : argv)
    if (!add(a)) return {};
  for (const auto& e : env)
    if (!add(e)) return {};
  if (out.size() > kExecRequestMax) return {};
  return out;
}

bool parse_exec_request_in_child(char* buf, size_t size, ExecHeader* header, char** argv,
                                 char** envp, const char** cwd) {
  if (size < sizeof(ExecHeader) || size > kExecRequestMax) return false;
  std::memcpy(header, buf, sizeof *header);
  if (header->magic != kExecMagic || header->argc == 0 || header->argc > kExecMaxArgs ||
      header->envc > kExecMaxArgs)
    return false;
  size_t at = sizeof(ExecHeader);
  // The next NUL-terminated string inside the buffer, or null past its end.
  auto next = [&]() -> char* {
    if (at >= size) return nullptr;
    char* start = buf + at;
    const void* nul = std::memchr(start, '\0', size - at);
    if (nul == nullptr) return nullptr;
    at = static_cast<size_t>(static_cast<const char*>(nul) - buf) + 1;
    return start;
  };
  *cwd = next();
  if (*cwd == nullptr) return false;
  for (uint32_t i = 0; i < header->argc; ++i)
    if ((argv[i] = next()) == nullptr) return false;
  argv[header->argc] = nullptr;
  for (uint32_t i = 0; i < header->envc; ++i)
    if ((envp[i] = next()) == nullptr) return false;
  envp[header->envc] = nullptr;
  return at == size;
}

}  // namespace openshell::supervisor
