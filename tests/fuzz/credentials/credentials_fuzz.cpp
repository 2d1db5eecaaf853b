// libFuzzer target: untrusted text from a sandbox -> credential placeholders resolved
// (core/credentials.hpp) and an inference.local body read (core/inference.hpp). The first byte
// picks where the rest goes: a header value, a request target, a body whose placeholders are
// rewritten (JSON, form, text), or a request/response body of inference.local. It
// must never crash; a key the lookup refuses fails the whole text; a text that resolved used
// only keys it named; and a body whose model could be read can be rewritten, and reads back the
// model it was given. (A resolved text may still look like it holds a placeholder: a key can
// end in "openshell" right before ":resolve:env:" in the input. That is the input's text, no
// secret, and it is not resolved twice.)
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/credentials.hpp"
#include "core/inference.hpp"

namespace {

using namespace openshell;

std::optional<std::string> bound(std::string_view key) {
  if (key == "FORBIDDEN") return std::nullopt;
  return "v4lue-" + std::string(key);
}

void check_resolved(const Result<credentials::Resolved>& r, std::string_view input) {
  const auto keys = credentials::keys_in(input);
  const bool refused = std::find(keys.begin(), keys.end(), "FORBIDDEN") != keys.end();
  if (!r) return;
  if (refused) std::abort();  // a refused key never resolves
  // Keys from a Basic credential's decoded text are not in the raw input's.
  std::string head(r->text.substr(0, 6));
  for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (head == "basic ") return;
  for (const auto& key : r->keys)
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const credentials::Lookup lookup = bound;
  switch (data[0] % 6) {
    case 0:
      check_resolved(credentials::resolve_header(input, lookup), input);
      break;
    case 1:
      check_resolved(credentials::resolve_target(input, lookup), input);
      break;
    case 2:
    case 3:
    case 4: {
      const auto kind = static_cast<credentials::BodyKind>(data[0] % 6 - 2);
      check_resolved(credentials::resolve_body(input, kind, lookup), input);
      (void)credentials::body_kind(input);
      (void)credentials::keys_in_header(input);
      break;
    }
    default: {
      (void)inference::usage_of(input);
      auto model = inference::requested_model(input);
      if (model) {
        auto rewritten = inference::with_model(input, "m");
        if (!rewritten) std::abort();  // a body whose model was read can be rewritten
        auto again = inference::requested_model(*rewritten);
        if (!again || *again != std::optional<std::string>("m")) std::abort();
      }
    }
  }
  return 0;
}
