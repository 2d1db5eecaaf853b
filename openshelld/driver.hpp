// How a sandbox's supervisor is started, found again and named in diagnostics: the one thing
// that differs between running under systemd (a transient unit per sandbox,
// systemd_driver.hpp) and without it (a detached process in a session of its own,
// direct_driver.hpp). The manager holds one Driver and never asks which; tests give it a fake
// (tests/unit/openshelld/fake_driver.hpp).
//
// Everything after the start is the same for every driver: the supervisor reports on its status
// channel ("launched PID" once the agent runs, "exit N" once the sandbox is gone), answers on
// its control socket, and is watched and signalled through a sys::ProcessHandle.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/policy.hpp"
#include "core/result.hpp"
#include "core/unique_fd.hpp"
#include "sys/process.hpp"

struct sd_event;

namespace openshell::daemon {

struct Config;

// One supervisor to start.
struct Launch {
  std::string sandbox;
  // `openshell-supervisor run` and its options, without the command; the driver adds its own
  // (--status-fd, --netns-*, --log, --cgroup-delegated).
  std::vector<std::string> args;
  std::vector<std::string> command;  // the sandbox's main process, after "--"
  policy::Resources resources;       // with the daemon's defaults (the unit's limits)
  UniqueFd status;                   // the supervisor's end of its status channel
  int status_ours = -1;              // ours (borrowed): a driver may send it the spare netns
  std::vector<UniqueFd> stdio;       // a run's: the caller's stdin, stdout, stderr
};

class Driver {
 public:
  virtual ~Driver() = default;

  [[nodiscard]] virtual const char* name() const = 0;  // "direct", "systemd"
  // Whether a run's supervisor can be given the caller's stdio (else a run is create, exec,
  // delete).
  [[nodiscard]] virtual bool passes_stdio() const = 0;

  // Starts the supervisor. Its handle when the driver knows it at once; else an empty one, and
  // the status channel's "launched PID" gives it through adopt(). A start that fails after this
  // returns shows as the status channel closing without "launched"; `failed`, if called (from
  // the loop), says why in the driver's words.
  virtual Result<sys::ProcessHandle> start(Launch launch, std::function<void(Error)> failed) = 0;
  // The supervisor of `sandbox` that was, or said it was, process `pid`: a handle checked to be
  // that sandbox's supervisor, or an error (it is gone, or `pid` is now someone else).
  virtual Result<sys::ProcessHandle> adopt(const std::string& sandbox, int pid) = 0;

  // Where its supervisor's own log is, for a human; and its last words there, for an error
  // ("" if none).
  [[nodiscard]] virtual std::string log_hint(const std::string& sandbox) const = 0;
  virtual std::string last_words(const std::string& sandbox) = 0;
};

// The driver `config.driver` asks for ("auto": systemd when PID 1 is systemd).
Result<std::unique_ptr<Driver>> make_driver(const Config& config, sd_event* event);

}  // namespace openshell::daemon
