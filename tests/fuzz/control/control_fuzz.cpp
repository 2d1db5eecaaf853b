// libFuzzer target: a control frame -> parse_request / parse_reply. Neither may crash, whatever
// the bytes; a request that parses must encode again and parse back to the same request.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/control.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace control = openshell::control;
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  (void)control::parse_reply(frame);
  auto request = control::parse_request(frame);
  if (!request) return 0;
  auto again = control::encode_request(*request);
  if (!again) std::abort();
  auto back = control::parse_request(*again);
  if (!back || back->op != request->op || back->exec.argv != request->exec.argv ||
      back->exec.env != request->exec.env || back->exec.cwd != request->exec.cwd ||
      back->exec.tty != request->exec.tty || back->policy_toml != request->policy_toml)
    std::abort();
  return 0;
}
