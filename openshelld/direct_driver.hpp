// The direct driver (no systemd as PID 1): each supervisor is a detached process in a session
// of its own, started by us (sys::spawn) with its handle taken before anything can reap it. It
// outlives the daemon; while we run we reap it (we are the subreaper of our supervisors, and of
// an earlier daemon's). Its own log is a file beside the sandbox's events.
#pragma once

#include "openshelld/driver.hpp"
#include "openshelld/netns_spare.hpp"

namespace openshell::daemon {

class DirectDriver final : public Driver {
 public:
  explicit DirectDriver(std::string log_dir);

  [[nodiscard]] const char* name() const override { return "direct"; }
  [[nodiscard]] bool passes_stdio() const override { return true; }
  Result<sys::ProcessHandle> start(Launch launch, std::function<void(Error)> failed) override;
  Result<sys::ProcessHandle> adopt(const std::string& sandbox, int pid) override;
  [[nodiscard]] std::string log_hint(const std::string& sandbox) const override;
  std::string last_words(const std::string& sandbox) override;

 private:
  std::string log_dir_;
  NetnsSpare spare_;  // the next supervisor's network namespace, made ahead
};

}  // namespace openshell::daemon
