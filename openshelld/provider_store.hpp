// The providers' and the inference routes' stores (DESIGN.md §5; issue 16 items 1 and 6): one
// JSON record per name, <state_dir>/providers/<name>.json and <state_dir>/routes/<name>.json,
// root-only (each directory 0700, each file 0600), written atomically. The providers' directory
// is the only place a credential's value is ever written. What is read back is validated again
// (core/providers, core/inference): a record that does not pass is reported and skipped.
#pragma once

#include <string>
#include <vector>

#include "core/inference.hpp"
#include "core/providers.hpp"
#include "core/result.hpp"

namespace openshell::daemon {

// One record per name in a root-only directory; `kind` ("provider", "route") names them in
// errors ("no provider NAME").
class RecordDir {
 public:
  // Creates the directory (0700) when missing, and makes it 0700 when it is not.
  static Result<RecordDir> open(std::string dir, std::string kind);
  [[nodiscard]] Status write(const std::string& name, const std::string& text) const;
  // ENOENT "no KIND NAME" when there is none.
  [[nodiscard]] Result<std::string> read(const std::string& name, size_t max_bytes) const;
  [[nodiscard]] bool exists(const std::string& name) const;
  [[nodiscard]] Status remove(const std::string& name) const;
  // The names that have a record, sorted (not yet read).
  [[nodiscard]] std::vector<std::string> names() const;
  [[nodiscard]] const std::string& kind() const { return kind_; }

 private:
  RecordDir(std::string dir, std::string kind) : dir_(std::move(dir)), kind_(std::move(kind)) {}
  [[nodiscard]] std::string path(const std::string& name) const;
  std::string dir_;
  std::string kind_;
};

class ProviderStore {
 public:
  static Result<ProviderStore> open(const std::string& state_dir);

  // Validates, then writes (creating or replacing).
  [[nodiscard]] Status put(const providers::Provider& provider);
  [[nodiscard]] Result<providers::Provider> get(const std::string& name) const;
  [[nodiscard]] bool exists(const std::string& name) const { return dir_.exists(name); }
  // An error when there is no such provider.
  [[nodiscard]] Status remove(const std::string& name) { return dir_.remove(name); }
  // The names of the providers stored, sorted; records that do not read back are left out
  // (and named in `problems` when it is given).
  [[nodiscard]] std::vector<std::string> names(std::vector<std::string>* problems = nullptr) const;

 private:
  explicit ProviderStore(RecordDir dir) : dir_(std::move(dir)) {}
  RecordDir dir_;
};

class RouteStore {
 public:
  static Result<RouteStore> open(const std::string& state_dir);
  [[nodiscard]] Status put(const inference::Route& route);
  [[nodiscard]] Result<inference::Route> get(const std::string& name) const;
  [[nodiscard]] Status remove(const std::string& name) { return dir_.remove(name); }
  // Every route that reads back, by name; the others named in `problems` when given.
  [[nodiscard]] std::vector<inference::Route> all(std::vector<std::string>* problems = nullptr) const;

 private:
  explicit RouteStore(RecordDir dir) : dir_(std::move(dir)) {}
  RecordDir dir_;
};

}  // namespace openshell::daemon
