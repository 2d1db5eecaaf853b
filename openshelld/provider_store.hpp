// The providers' store (DESIGN.md §5; issue 16 item 1): one record per provider,
// <state_dir>/providers/<name>.json, root-only (the directory 0700, each file 0600), written
// atomically; the only place a credential's value is ever written. What is read back is
// validated again (core/providers): a record that does not pass is reported and skipped.
#pragma once

#include <string>
#include <vector>

#include "core/providers.hpp"
#include "core/result.hpp"

namespace openshell::daemon {

class ProviderStore {
 public:
  // Creates <state_dir>/providers (0700) when missing, and makes it 0700 when it is not.
  static Result<ProviderStore> open(const std::string& state_dir);

  // Validates, then writes (creating or replacing).
  [[nodiscard]] Status put(const providers::Provider& provider);
  [[nodiscard]] Result<providers::Provider> get(const std::string& name) const;
  [[nodiscard]] bool exists(const std::string& name) const;
  // An error when there is no such provider.
  [[nodiscard]] Status remove(const std::string& name);
  // The names of the providers stored, sorted; records that do not read back are left out
  // (and named in `problems` when it is given).
  [[nodiscard]] std::vector<std::string> names(std::vector<std::string>* problems = nullptr) const;

 private:
  explicit ProviderStore(std::string dir) : dir_(std::move(dir)) {}
  [[nodiscard]] std::string path(const std::string& name) const;
  std::string dir_;
};

}  // namespace openshell::daemon
