// A Driver for the manager's unit tests: each "supervisor" is a forked copy of the test that
// does what its command says, speaking the real protocols (the status channel, the control
// socket), so the manager's lifecycle is tested without root, namespaces or the supervisor.
//
// Commands: {"sleep"} launches and serves its control socket until shut down ("exit 143");
// {"exit", "N"} launches and ends with N at once (a run's command); {"fail"} ends with 125
// before launching; {"missing"} ends with 127 before launching (command not found). A sandbox
// named in hold() waits before launching until release(). The providers and routes each
// receives (core/services) are appended to <its events file>.services, a JSON line each.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "openshelld/driver.hpp"

namespace openshell::daemon::testing {

// What outlives one driver: the processes it started (a restarted daemon's driver adopts them).
struct FakeWorld {
  std::map<std::string, int> started;  // sandbox -> pid
  std::map<std::string, int> holds;    // sandbox -> the write end its launch waits on
  ~FakeWorld();                        // kills and reaps every process still there
};

class FakeDriver final : public Driver {
 public:
  explicit FakeDriver(std::shared_ptr<FakeWorld> world) : world_(std::move(world)) {}
  [[nodiscard]] const char* name() const override { return "fake"; }
  [[nodiscard]] bool passes_stdio() const override { return true; }
  Result<sys::ProcessHandle> start(Launch launch, std::function<void(Error)> failed) override;
  Result<sys::ProcessHandle> adopt(const std::string& sandbox, int pid) override;
  [[nodiscard]] std::string log_hint(const std::string& sandbox) const override {
    return "the fake log of " + sandbox;
  }
  std::string last_words(const std::string&) override { return "fake supervisor gave up"; }

  // The next start of `sandbox` waits before it launches until release().
  void hold(const std::string& sandbox);
  void release(const std::string& sandbox);

 private:
  std::shared_ptr<FakeWorld> world_;
};

}  // namespace openshell::daemon::testing
