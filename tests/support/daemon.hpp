// A private openshelld for end-to-end tests (daemon_test, sandbox_providers_test): its own dbus-daemon,
// the daemon with the direct driver in a temporary tree, and openshellctl bound to them, as a
// user would run it. Needs OPENSHELL_DAEMON_BIN and OPENSHELL_CTL_BIN (the test's CMake).
#pragma once

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "core/unique_fd.hpp"
#include "tests/support/harness.hpp"

namespace openshell::testing {

// A bus, a daemon and a CLI bound to them, all under one temporary directory.
class Daemon {
 public:
  // notify: the daemon gets a NOTIFY_SOCKET of ours, as under systemd (notifications()).
  // config: more lines for its openshelld.toml.
  explicit Daemon(bool notify = false, const std::string& config = "",
                  const std::string& supervisor = supervisor_bin()) {
    if (notify) {
      notify_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      REQUIRE(notify_);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      const std::string path = dir_.path() + "/notify";
      std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
      REQUIRE(::bind(notify_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    address_ = "unix:path=" + dir_.path() + "/bus";
    // Unprivileged callers must reach the bus socket in here (as they reach the system bus).
    REQUIRE(::chmod(dir_.path().c_str(), 0755) == 0);
    dir_.write("bus.conf",
               "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration "
               "1.0//EN\" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
               "<busconfig><type>custom</type><listen>" +
                   address_ +
                   "</listen><auth>EXTERNAL</auth><policy context=\"default\">"
                   "<allow user=\"*\"/><allow own=\"*\"/><allow send_destination=\"*\"/>"
                   "<allow receive_sender=\"*\"/></policy></busconfig>\n");
    bus_ = spawn_process({"/usr/bin/dbus-daemon", "--config-file=" + dir_.path() + "/bus.conf",
                          "--nofork"},
                         dir_.path() + "/bus.log");
    REQUIRE(eventually([&] { return path_exists(dir_.path() + "/bus"); }));
    ::mkdir((dir_.path() + "/policies").c_str(), 0755);
    dir_.write("policies/default.toml", test_policy("", "include_workdir = true\n"));
    dir_.write("openshelld.toml", "state_dir = \"" + dir_.path() + "/state\"\n" +
                                      "policy_dir = \"" + dir_.path() + "/policies\"\n" +
                                      "runtime_dir = \"" + dir_.path() + "/run\"\n" +
                                      "log_dir = \"" + dir_.path() + "/log\"\n" +
                                      "supervisor = \"" + supervisor + "\"\n" + config);
    start();
  }
  ~Daemon() {
    for (const auto& name : created_) (void)ctl({"sandbox", "delete", name});
    stop(SIGTERM);
    ::kill(bus_, SIGTERM);
    ::waitpid(bus_, nullptr, 0);
  }

  void start() {
    if (notify_) ::setenv("NOTIFY_SOCKET", (dir_.path() + "/notify").c_str(), 1);
    daemon_ = spawn_process({OPENSHELL_DAEMON_BIN, "--config", dir_.path() + "/openshelld.toml",
                             "--bus", address_},
                            dir_.path() + "/daemon.log");
    ::unsetenv("NOTIFY_SOCKET");
    REQUIRE(eventually([&] { return ctl({"status"}).exit_code == 0; }));
  }
  void stop(int sig) {
    if (daemon_ <= 0) return;
    ::kill(daemon_, sig);
    ::waitpid(daemon_, nullptr, 0);
    daemon_ = -1;
  }
  Outcome ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {OPENSHELL_CTL_BIN, "--bus", address_});
    return run_process(args, 60);
  }
  std::string create(const std::string& stem) {
    const std::string name = unique_name(stem);
    auto r = ctl({"sandbox", "create", name});
    INFO(r.out << r.err << read_text(dir_.path() + "/daemon.log"));
    REQUIRE(r.exit_code == 0);
    created_.push_back(name);
    return name;
  }
  // A sandbox made another way than create(), deleted with the daemon like those: a test that
  // fails halfway leaves no supervisor behind.
  void delete_at_end(const std::string& name) { created_.push_back(name); }
  const TempDir& dir() const { return dir_; }
  pid_t pid() const { return daemon_; }
  const std::string& address() const { return address_; }
  // A raw client connection to the daemon's bus, for calls openshellctl would never make.
  sd_bus* open_bus() const {
    sd_bus* bus = nullptr;
    REQUIRE(sd_bus_new(&bus) >= 0);
    REQUIRE(sd_bus_set_address(bus, address_.c_str()) >= 0);
    REQUIRE(sd_bus_set_bus_client(bus, 1) >= 0);
    REQUIRE(sd_bus_start(bus) >= 0);
    return bus;
  }
  // Every sd_notify message received so far, in order.
  std::string notifications() {
    char buf[4096];
    for (ssize_t n; (n = ::recv(notify_.get(), buf, sizeof buf, 0)) > 0;)
      received_ += std::string(buf, static_cast<size_t>(n)) + "\n--\n";
    return received_;
  }

 private:
  TempDir dir_;
  std::string address_;
  pid_t bus_ = -1;
  pid_t daemon_ = -1;
  std::vector<std::string> created_;
  openshell::UniqueFd notify_;
  std::string received_;
};

}  // namespace openshell::testing
