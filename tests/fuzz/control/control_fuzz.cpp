// libFuzzer target: a control frame -> parse_request / parse_reply. Neither may crash, whatever
// the bytes; a request that parses must encode again and parse back to the same request. A
// services_update's services go through core/services too: what parses there must encode and
// parse back to the same message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/control.hpp"
#include "core/services.hpp"

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
      back->exec.tty != request->exec.tty || back->policy_toml != request->policy_toml ||
      back->services != request->services)
    std::abort();
  if (request->op == control::Op::kServicesUpdate) {
    namespace services = openshell::services;
    auto parsed = services::from_json(request->services);
    if (!parsed) return 0;
    auto encoded = services::to_json(*parsed);
    if (!encoded) return 0;  // over the size limit: refused, as the daemon would
    auto again_parsed = services::from_json(*encoded);
    if (!again_parsed || services::to_json(*again_parsed)->dump() != encoded->dump()) std::abort();
  }
  return 0;
}
