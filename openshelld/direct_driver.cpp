#include "openshelld/direct_driver.hpp"

#include <fcntl.h>

#include <systemd/sd-daemon.h>

#include "openshelld/config.hpp"
#include "openshelld/systemd_driver.hpp"
#include "sys/file_util.hpp"

namespace openshell::daemon {
namespace {

// Whether `cmdline` (NUL-separated) is that of sandbox `name`'s supervisor.
bool is_supervisor_cmdline(const std::string& cmdline, const std::string& name) {
  return cmdline.find(std::string("\0--name\0", 8) + name + '\0') != std::string::npos;
}

}  // namespace

DirectDriver::DirectDriver(std::string log_dir) : log_dir_(std::move(log_dir)) { spare_.start(); }

std::string DirectDriver::log_hint(const std::string& sandbox) const {
  return log_dir_ + "/sandboxes/" + sandbox + "/supervisor.log";
}

std::string DirectDriver::last_words(const std::string& sandbox) {
  auto text = sys::read_file(log_hint(sandbox), 1 << 20);
  if (!text) return "";
  std::string t = std::move(*text);
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

Result<sys::ProcessHandle> DirectDriver::start(Launch launch, std::function<void(Error)>) {
  // Options of `run` (args[1]): the status channel as fd 3, a ready namespace as fd 4.
  std::vector<std::string> options = {"--status-fd", "3"};
  sys::SpawnSpec spec;
  const std::string log_file = log_hint(launch.sandbox);
  UniqueFd null_in, log_out;
  if (launch.stdio.size() == 3) {
    // stdio is the caller's (the agent's); our lines go to the file.
    options.insert(options.end(), {"--log", log_file});
    for (int i = 0; i < 3; ++i)
      spec.fds.emplace_back(launch.stdio[static_cast<size_t>(i)].get(), i);
  } else {
    null_in = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    log_out = UniqueFd(
        ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!null_in || !log_out) return Error::from_errno("opening " + log_file);
    spec.fds = {{null_in.get(), 0}, {log_out.get(), 1}, {log_out.get(), 2}};
  }
  spec.fds.emplace_back(launch.status.get(), 3);
  UniqueFd netns = spare_.take();
  if (netns) {
    options.insert(options.end(), {"--netns-fd", "4"});
    spec.fds.emplace_back(netns.get(), 4);
  }
  spec.argv = std::move(launch.args);
  if (spec.argv.size() < 2) return Error::invalid("no supervisor command");
  spec.argv.insert(spec.argv.begin() + 2, options.begin(), options.end());
  spec.argv.emplace_back("--");
  spec.argv.insert(spec.argv.end(), launch.command.begin(), launch.command.end());
  auto process = sys::spawn(spec);
  if (!process)
    return Error{process.error().code, "could not start the supervisor " + spec.argv[0]};
  return process;
}

Result<sys::ProcessHandle> DirectDriver::adopt(const std::string& sandbox, int pid) {
  auto process = sys::ProcessHandle::open(pid);
  if (!process) return process.error();
  auto cmdline = process->cmdline();
  if (!cmdline) return cmdline.error();
  if (!is_supervisor_cmdline(*cmdline, sandbox))
    return Error::from_errno(
        "process " + std::to_string(pid) + " is not the supervisor of " + sandbox, ESRCH);
  return process;
}

Result<std::unique_ptr<Driver>> make_driver(const Config& config, sd_event* event) {
  if (config.driver == "systemd" || (config.driver == "auto" && sd_booted() > 0)) {
    auto driver = SystemdDriver::connect(event);
    if (!driver) return driver.error();
    return std::unique_ptr<Driver>(std::move(*driver));
  }
  return std::unique_ptr<Driver>(std::make_unique<DirectDriver>(config.log_dir));
}

}  // namespace openshell::daemon
