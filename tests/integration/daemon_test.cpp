// openshelld end to end (issue 4): a private dbus-daemon, the daemon with the direct driver in
// a temporary tree, and openshellctl as a user would run it.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/harness.hpp"

using namespace openshell::testing;

namespace {

// A bus, a daemon and a CLI bound to them, all under one temporary directory.
class Daemon {
 public:
  Daemon() {
    address_ = "unix:path=" + dir_.path() + "/bus";
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
                                      "supervisor = \"" + supervisor_bin() + "\"\n");
    start();
  }
  ~Daemon() {
    for (const auto& name : created_) (void)ctl({"sandbox", "delete", name});
    stop(SIGTERM);
    ::kill(bus_, SIGTERM);
    ::waitpid(bus_, nullptr, 0);
  }

  void start() {
    daemon_ = spawn_process({OPENSHELL_DAEMON_BIN, "--config", dir_.path() + "/openshelld.toml",
                             "--bus", address_},
                            dir_.path() + "/daemon.log");
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
  const TempDir& dir() const { return dir_; }
  const std::string& address() const { return address_; }

 private:
  TempDir dir_;
  std::string address_;
  pid_t bus_ = -1;
  pid_t daemon_ = -1;
  std::vector<std::string> created_;
};

}  // namespace

TEST_CASE("openshelld: create, exec, list, get, delete") {
  Daemon d;
  const std::string name = d.create("d");

  auto hi = d.ctl({"exec", name, "--", "echo", "hi"});
  CHECK(hi.exit_code == 0);
  CHECK(hi.out == "hi\n");
  CHECK(d.ctl({"exec", name, "--", "/bin/sh", "-c", "exit 7"}).exit_code == 7);
  auto env = d.ctl({"exec", name, "--env", "X=1", "--workdir", "/tmp", "--", "/bin/sh", "-c",
                    "echo $X; pwd; id -u"});
  CHECK(env.out == "1\n/tmp\n1000\n");

  auto list = d.ctl({"--json", "sandbox", "list"});
  REQUIRE(list.exit_code == 0);
  auto rows = nlohmann::json::parse(list.out);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["name"] == name);
  CHECK(rows[0]["phase"] == "running");
  CHECK(rows[0]["policy"] == "default");
  CHECK(rows[0]["owner"] == 0);
  auto get = d.ctl({"sandbox", "get", name});
  CHECK(get.exit_code == 0);
  CHECK(get.out.find("phase     running") != std::string::npos);

  // Errors: one line, exit 1; usage errors exit 2.
  auto missing = d.ctl({"exec", "no-such-sandbox", "--", "true"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("no sandbox no-such-sandbox") != std::string::npos);
  for (const char* bad : {"a/b", "..", "UPPER", "-x"}) {
    auto r = d.ctl({"sandbox", "create", "--", bad});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("invalid sandbox name") != std::string::npos);
  }
  CHECK(d.ctl({"sandbox", "create", "x", "--policy", "../etc/passwd"}).exit_code == 1);
  CHECK(d.ctl({"sandbox", "create", "x", "--policy", "absent"}).exit_code == 1);
  CHECK(d.ctl({"sandbox", "bogus"}).exit_code == 2);
  CHECK(d.ctl({"exec", name}).exit_code == 2);

  auto del = d.ctl({"sandbox", "delete", name});
  CHECK(del.exit_code == 0);
  CHECK(d.ctl({"exec", name, "--", "true"}).exit_code == 1);
  auto empty = nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out);
  CHECK(empty.empty());
  CHECK_FALSE(path_exists(d.dir().path() + "/state/workspaces/" + name));
}

TEST_CASE("openshelld: sandboxes outlive a kill -9 of the daemon and are re-adopted") {
  Daemon d;
  const std::string a = d.create("ra");
  const std::string b = d.create("rb");
  REQUIRE(d.ctl({"exec", a, "--", "/bin/sh", "-c", "echo kept > /sandbox/file"}).exit_code == 0);

  d.stop(SIGKILL);
  CHECK(d.ctl({"status"}).exit_code == 1);  // nobody serves the bus name now
  d.start();

  auto rows = nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out);
  REQUIRE(rows.size() == 2);
  for (const auto& row : rows) CHECK(row["phase"] == "running");
  CHECK(d.ctl({"exec", a, "--", "cat", "/sandbox/file"}).out == "kept\n");
  CHECK(d.ctl({"exec", b, "--", "echo", "b"}).out == "b\n");
}

TEST_CASE("openshelld: the interface is what docs/org.openshell.Manager1.xml says") {
  Daemon d;
  sd_bus* bus = nullptr;
  REQUIRE(sd_bus_new(&bus) >= 0);
  REQUIRE(sd_bus_set_address(bus, d.address().c_str()) >= 0);
  REQUIRE(sd_bus_set_bus_client(bus, 1) >= 0);
  REQUIRE(sd_bus_start(bus) >= 0);
  sd_bus_message* reply = nullptr;
  sd_bus_error error = SD_BUS_ERROR_NULL;
  REQUIRE(sd_bus_call_method(bus, "org.openshell.Manager1", "/org/openshell/Manager1",
                             "org.freedesktop.DBus.Introspectable", "Introspect", &error, &reply,
                             "") >= 0);
  const char* xml = nullptr;
  REQUIRE(sd_bus_message_read(reply, "s", &xml) >= 0);
  const std::string live(xml);
  sd_bus_message_unref(reply);
  sd_bus_error_free(&error);
  sd_bus_flush_close_unref(bus);
  auto interface_of = [](const std::string& text) {
    const auto begin = text.find("<interface name=\"org.openshell.Manager1\">");
    const auto end = text.find("</interface>", begin);
    REQUIRE(begin != std::string::npos);
    REQUIRE(end != std::string::npos);
    return text.substr(begin, end - begin);
  };
  const std::string documented =
      read_text(std::string(OPENSHELL_SOURCE_DIR) + "/docs/org.openshell.Manager1.xml");
  CHECK(interface_of(live) == interface_of(documented));
}
