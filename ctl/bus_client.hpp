// openshellctl's connection to openshelld (org.openshell.Manager1): the system bus, or --bus.
#pragma once

#include <systemd/sd-bus.h>

#include <memory>
#include <string>
#include <vector>

#include "core/bus_ptr.hpp"
#include "core/result.hpp"

struct sd_bus;
struct sd_bus_message;

namespace openshell::ctl {

struct BusDeleter {
  void operator()(sd_bus* bus) const;
};
using BusPtr = std::unique_ptr<sd_bus, BusDeleter>;
using MessagePtr = BusMessage;

Result<BusPtr> connect(const std::string& address);

// A method call on the manager object built by `fill`, its reply, or the D-Bus error as text
// (the daemon's own message, e.g. "no sandbox x").
template <typename Fill>
Result<MessagePtr> call(sd_bus* bus, const char* method, Fill fill);

// A failed call's error as ours: the daemon's text (rc's when it has none), and for the two
// errors a command's own exit status stands for, a code fail_command() tells them by.
Error call_error(const sd_bus_error& error, int rc);

Result<MessagePtr> call_prepared(sd_bus* bus, sd_bus_message* request);
// The same for a call that runs a command (Exec, RunSandbox): SIGINT, SIGTERM, SIGHUP and
// SIGQUIT sent to us meanwhile go to the command (SignalCommand), as docker run does.
Result<MessagePtr> call_forwarding_signals(sd_bus* bus, sd_bus_message* request);

// An `as` argument appended to a message, or read from a reply; sd-bus return codes.
int append_strings(sd_bus_message* m, const std::vector<std::string>& v);
int read_strings(sd_bus_message* m, std::vector<std::string>* out);
Result<MessagePtr> new_call(sd_bus* bus, const char* method);

// What a new sandbox gets besides its policy and command (the a{sv} options of CreateSandbox,
// CreateSandboxWithPolicy and RunSandbox).
struct NewSandbox {
  std::string workdir;  // as given; sent as its real path, resolved with our own rights
  bool workdir_readonly = false;
  std::vector<std::string> env;  // create only: RunSandbox takes its env apart
  std::vector<std::string> providers;  // create only: attached providers (--provider)
  std::vector<std::string> routes;     // create only: inference routes (--inference)
};
// Appends the options; an error for a workdir we cannot resolve.
Result<int> append_options(sd_bus_message* m, const NewSandbox& options, bool with_env);

// A policy file's text ("-": standard input), at most 1 MiB.
Result<std::string> read_policy_file(const std::string& file);

template <typename Fill>
Result<MessagePtr> call(sd_bus* bus, const char* method, Fill fill) {
  auto request = new_call(bus, method);
  if (!request) return request.error();
  if (int rc = fill(request->get()); rc < 0)
    return Error::from_errno(std::string("building ") + method, -rc);
  return call_prepared(bus, request->get());
}

}  // namespace openshell::ctl
