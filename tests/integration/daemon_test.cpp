// openshelld end to end (issue 4): a private dbus-daemon, the daemon with the direct driver in
// a temporary tree, and openshellctl as a user would run it.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "core/unique_fd.hpp"
#include "sys/nft.hpp"
#include "tests/support/daemon.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/upstream.hpp"

using namespace openshell::testing;

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
  // Root's sandbox writes as an id of its own on the host, not as nobody (issue 13.13).
  CHECK(d.ctl({"exec", name, "--", "/bin/sh", "-c", "echo x > /sandbox/mine"}).exit_code == 0);
  struct stat mine {};
  REQUIRE(::stat((d.dir().path() + "/state/workspaces/" + name + "/mine").c_str(), &mine) == 0);
  CHECK(mine.st_uid >= 2147000000U);
  CHECK(mine.st_uid <= 2147999999U);

  auto list = d.ctl({"--json", "sandbox", "list"});
  REQUIRE(list.exit_code == 0);
  auto rows = nlohmann::json::parse(list.out);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["name"] == name);
  CHECK(rows[0]["phase"] == "running");
  CHECK(rows[0]["policy"] == "default");
  CHECK(rows[0]["owner"] == 0);
  // status: the driver, and what the kernel offers (this machine: Landlock, nft, userns).
  auto status = nlohmann::json::parse(d.ctl({"--json", "status"}).out);
  CHECK(status["driver"] == "direct");  // PID 1 is not systemd here
  CHECK(status["sandboxes"] == 1);
  CHECK(status["kernel"]["landlock"].get<std::string>().rfind("ABI ", 0) == 0);
  CHECK(status["kernel"]["nftables"] == "available");
  CHECK(status["kernel"]["userns"].get<std::string>().rfind("yes", 0) == 0);
  CHECK(status["kernel"]["cgroup"].get<std::string>().find("pids") != std::string::npos);
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

// Issue 13.13: a second daemon on the same bus says another owns the name, and leaves the
// first one's state alone (it used to adopt its sandboxes before it found out).
TEST_CASE("openshelld: a second daemon on the same bus stops and touches nothing") {
  Daemon d;
  const std::string name = d.create("first");
  const std::string record = d.dir().path() + "/state/sandboxes/" + name + ".json";
  const std::string before = read_text(record);
  auto second = run_process({OPENSHELL_DAEMON_BIN, "--config", d.dir().path() + "/openshelld.toml",
                             "--bus", d.address()},
                            30);
  CHECK(second.exit_code == 1);
  CHECK(second.err.find("another openshelld owns org.openshell.Manager1") != std::string::npos);
  CHECK(read_text(record) == before);
  CHECK(d.ctl({"exec", name, "--", "true"}).exit_code == 0);
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
  // Their supervisors never stopped enforcing: egress the policy does not allow is refused.
  for (const auto& name : {a, b}) {
    auto denied = d.ctl({"exec", name, "--", "/usr/bin/curl", "-s", "-m", "5", "-w",
                         " %{http_code}", "http://198.51.100.7/secret"});
    CHECK(denied.out.find(" 403") != std::string::npos);
  }
}

// The network namespaces a process holds descriptors of, other than its own.
std::vector<std::string> held_netns(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  const std::string own = std::filesystem::read_symlink(proc + "/ns/net").string();
  std::vector<std::string> held;
  for (const auto& e : std::filesystem::directory_iterator(proc + "/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (target.starts_with("net:[") && target != own) held.push_back(target);
  }
  return held;
}

// Runs nft `commands` in the network namespace `netns` ("net:[N]") that `pid` holds.
openshell::Status nft_in_held(pid_t pid, const std::string& netns, const std::string& commands) {
  const std::string proc = "/proc/" + std::to_string(pid);
  openshell::Status out = openshell::Error::invalid("not found");
  std::thread([&] {
    for (const auto& e : std::filesystem::directory_iterator(proc + "/fd")) {
      std::error_code ec;
      if (std::filesystem::read_symlink(e.path(), ec).string() != netns) continue;
      openshell::UniqueFd fd(::open(e.path().c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd || ::setns(fd.get(), CLONE_NEWNET) != 0) return;
      out = openshell::sys::nft_apply(commands);
      return;
    }
  }).join();
  return out;
}

TEST_CASE("openshelld: a spare sandbox network, handed to the next supervisor") {
  Daemon d;
  INFO(read_text(d.dir().path() + "/daemon.log"));
  // One spare, away from the host's network (this test's): the capture ruleset is there, not
  // here. It also keeps the sandboxes' kinds of netfilter hooks switched on.
  std::vector<std::string> held;
  REQUIRE(eventually([&] { return (held = held_netns(d.pid())).size() == 1; }));
  const std::string spare = held[0];
  CHECK_FALSE(openshell::sys::nft_apply("list table inet openshell").ok());
  // The daemon holds the namespace while its thread still sets it up: the ruleset comes after.
  CHECK(eventually(
      [&] { return nft_in_held(d.pid(), spare, "list chain inet openshell capture").ok(); }));
  CHECK(nft_in_held(d.pid(), spare, "list chain inet openshell egress").ok());

  // The next sandbox runs in it, and its egress is captured there as in one of its own.
  const std::string name = d.create("spare");
  auto in_sandbox = d.ctl({"exec", name, "--", "/bin/sh", "-c", "readlink /proc/self/ns/net"});
  CHECK(in_sandbox.out == spare + "\n");
  auto denied = d.ctl({"exec", name, "--", "/usr/bin/curl", "-s", "-m", "5", "-w", " %{http_code}",
                       "http://198.51.100.7/secret"});
  CHECK(denied.out.find(" 403") != std::string::npos);
  // And a new spare is made for the one after.
  CHECK(eventually([&] {
    held = held_netns(d.pid());
    return held.size() == 1 && held[0] != spare;
  }));
}

TEST_CASE("openshelld: a removed sandbox's logs leave its name; the newest few are kept") {
  Daemon d(false, "removed_logs_kept = 2\n");
  const std::string log_dir = d.dir().path() + "/log";
  const std::string name = d.create("logs");
  (void)d.ctl(
      {"exec", name, "--", "/usr/bin/curl", "-s", "-m", "5", "http://first-owner.example/"});
  REQUIRE(d.ctl({"logs", name, "-n", "100"}).out.find("first-owner.example") != std::string::npos);
  REQUIRE(d.ctl({"sandbox", "delete", name}).exit_code == 0);

  // A new sandbox of the same name (anyone's) starts with no events but its own...
  REQUIRE(d.ctl({"sandbox", "create", name}).exit_code == 0);
  auto fresh = d.ctl({"logs", name, "-n", "100"});
  REQUIRE(fresh.exit_code == 0);
  CHECK(fresh.out.find("first-owner.example") == std::string::npos);
  // ...and the old ones are under removed/, stamped with their removal.
  auto removed = [&] {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(log_dir + "/removed"))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  REQUIRE(removed().size() == 1);
  CHECK(removed()[0].ends_with("-" + name));
  CHECK(read_text(log_dir + "/removed/" + removed()[0] + "/events.jsonl")
            .find("first-owner.example") != std::string::npos);

  // Runs are removed sandboxes too: only the newest two stay.
  for (int i = 0; i < 3; ++i) REQUIRE(d.ctl({"run", "--", "/bin/true"}).exit_code == 0);
  const auto left = removed();
  REQUIRE(left.size() == 2);
  for (const auto& entry : left) CHECK(entry.find("-run-") != std::string::npos);
  CHECK(std::filesystem::is_directory(log_dir + "/sandboxes/" + name));
}

TEST_CASE("openshelld: a supervisor it started stops on SIGTERM, like any service") {
  Daemon d;
  const std::string name = d.create("term");
  // The oldest process with the sandbox's name is its supervisor (the reaper and init follow).
  auto found = run_process({"/usr/bin/pgrep", "-o", "-f", "--", "--name " + name + " "});
  REQUIRE(found.exit_code == 0);
  const pid_t supervisor = std::stoi(found.out);
  // The daemon blocks SIGTERM for its event loop; its supervisors must not inherit that.
  const std::string status = read_text("/proc/" + std::to_string(supervisor) + "/status");
  CHECK(status.find("SigBlk:\t0000000000000000") != std::string::npos);
  REQUIRE(::kill(supervisor, SIGTERM) == 0);
  CHECK(eventually([&] { return ::kill(supervisor, 0) != 0 && errno == ESRCH; }));
  auto get = d.ctl({"sandbox", "get", name});
  CHECK(get.out.find("phase     stopped") != std::string::npos);
}

TEST_CASE("openshelld: the interface is what docs/org.openshell.Manager1.xml says") {
  Daemon d;
  sd_bus* bus = d.open_bus();
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
  INFO("after changing the bus methods: docs/update-introspection.sh BUILD_DIR");
  CHECK(interface_of(live) == interface_of(documented));
}

namespace {

// Runs openshellctl as uid/gid `id` with `groups` as supplementary groups.
Outcome ctl_as(Daemon& d, uid_t id, std::vector<gid_t> groups, std::vector<std::string> args) {
  const std::string out = d.dir().path() + "/as-" + std::to_string(id) + ".out";
  const std::string err = d.dir().path() + "/as-" + std::to_string(id) + ".err";
  args.insert(args.begin(), {OPENSHELL_CTL_BIN, "--bus", d.address()});
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The output files are opened as root: the test's directory is not the caller's.
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (o < 0 || e < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0) ::_exit(98);
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setresgid(id, id, id) != 0 ||
        ::setresuid(id, id, id) != 0)
      ::_exit(99);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(97);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  Outcome r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

// A user for the duration of a test (dbus-daemon refuses uids without a passwd entry).
class TestUser {
 public:
  explicit TestUser(const std::string& suffix)
      : name_("osh" + std::to_string(::getpid() % 100000) + suffix) {
    REQUIRE(run_process({"/usr/sbin/useradd", "--system", "--no-create-home", "--shell",
                         "/usr/sbin/nologin", name_})
                .exit_code == 0);
    const passwd* pw = ::getpwnam(name_.c_str());
    REQUIRE(pw != nullptr);
    uid_ = pw->pw_uid;
  }
  ~TestUser() { (void)run_process({"/usr/sbin/userdel", name_}); }
  uid_t uid() const { return uid_; }
  // Membership as an administrator grants it (the bus reports groups from the user database).
  void join(const std::string& group) {
    REQUIRE(run_process({"/usr/bin/gpasswd", "-a", name_, group}).exit_code == 0);
  }

 private:
  std::string name_;
  uid_t uid_ = 0;
};

// Group `openshell` for the duration of a test: made if missing, removed again if we made it.
class OpenshellGroup {
 public:
  OpenshellGroup() {
    if (const group* g = ::getgrnam("openshell"); g != nullptr) {
      gid_ = g->gr_gid;
      return;
    }
    REQUIRE(run_process({"/usr/sbin/groupadd", "--system", "openshell"}).exit_code == 0);
    made_ = true;
    const group* g = ::getgrnam("openshell");
    REQUIRE(g != nullptr);
    gid_ = g->gr_gid;
  }
  ~OpenshellGroup() {
    if (made_) (void)run_process({"/usr/sbin/groupdel", "openshell"});
  }
  gid_t gid() const { return gid_; }

 private:
  gid_t gid_ = 0;
  bool made_ = false;
};

}  // namespace

TEST_CASE("openshelld: only root and group openshell may call; members see their own only") {
  OpenshellGroup group;
  TestUser stranger_user("s"), member("m"), other_member("o");
  member.join("openshell");
  other_member.join("openshell");
  Daemon d;
  const std::string roots = d.create("root");

  // Neither root nor in the group: refused outright.
  auto stranger = ctl_as(d, stranger_user.uid(), {}, {"sandbox", "list"});
  CHECK(stranger.exit_code == 1);
  CHECK(stranger.err.find("only root and members of group openshell") != std::string::npos);

  // A member: creates, sees and uses its own; root's sandbox does not exist for it.
  const std::string mine = unique_name("mine");
  d.delete_at_end(mine);
  auto created = ctl_as(d, member.uid(), {group.gid()}, {"sandbox", "create", mine});
  INFO(created.err);
  REQUIRE(created.exit_code == 0);
  auto listed = ctl_as(d, member.uid(), {group.gid()}, {"--json", "sandbox", "list"});
  REQUIRE(listed.exit_code == 0);
  auto rows = nlohmann::json::parse(listed.out);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["name"] == mine);
  CHECK(rows[0]["owner"] == member.uid());
  CHECK(ctl_as(d, member.uid(), {group.gid()}, {"exec", mine, "--", "true"}).exit_code == 0);
  CHECK(ctl_as(d, member.uid(), {group.gid()}, {"exec", roots, "--", "true"}).exit_code == 1);
  // Its uploads are its own files (it copies with its own credentials); root's workspace is
  // not there for it.
  const std::string source = "/tmp/osh-upload-" + std::to_string(::getpid());
  { std::ofstream(source) << "from the member\n"; }
  REQUIRE(::chmod(source.c_str(), 0644) == 0);
  CHECK(ctl_as(d, member.uid(), {group.gid()}, {"upload", mine, source, "note"}).exit_code == 0);
  struct stat uploaded {};
  CHECK(::stat((d.dir().path() + "/state/workspaces/" + mine + "/note").c_str(), &uploaded) == 0);
  CHECK(uploaded.st_uid == member.uid());
  CHECK(ctl_as(d, member.uid(), {group.gid()}, {"exec", mine, "--", "cat", "/sandbox/note"}).out ==
        "from the member\n");
  CHECK(ctl_as(d, member.uid(), {group.gid()}, {"upload", roots, source}).exit_code == 1);
  ::unlink(source.c_str());
  CHECK(ctl_as(d, member.uid(), {group.gid()}, {"sandbox", "delete", roots}).exit_code == 1);
  // Issue 13.C: creating a name root holds answers as creating one's own does: "taken", with
  // nothing about whose it is.
  auto taken_by_root = ctl_as(d, member.uid(), {group.gid()}, {"sandbox", "create", roots});
  auto taken_by_self = ctl_as(d, member.uid(), {group.gid()}, {"sandbox", "create", mine});
  CHECK(taken_by_root.exit_code == 1);
  CHECK(taken_by_self.exit_code == 1);
  CHECK(taken_by_root.err.find("the sandbox name " + roots + " is taken") != std::string::npos);
  const auto without_name = [](std::string err, const std::string& name) {
    return err.replace(err.find(name), name.size(), "NAME");
  };
  CHECK(without_name(taken_by_root.err, roots) == without_name(taken_by_self.err, mine));
  // Another member does not see the first member's sandbox either; root sees both.
  auto other = ctl_as(d, other_member.uid(), {group.gid()}, {"--json", "sandbox", "list"});
  REQUIRE(other.exit_code == 0);
  CHECK(nlohmann::json::parse(other.out).empty());
  CHECK(nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out).size() == 2);
  CHECK(ctl_as(d, member.uid(), {group.gid()}, {"sandbox", "delete", mine}).exit_code == 0);
}

// Issue 13.A: a member's policy named /root/... or a file in another user's 0700 home, and the
// root supervisor bound it: the agent printed what the member could not read on the host.
TEST_CASE("openshelld: a member's sandbox shows it no host path it could not reach itself") {
  OpenshellGroup group;
  TestUser member("m"), other("h");
  member.join("openshell");
  Daemon d;
  const std::string tag = std::to_string(::getpid());
  // Root's: a directory under /root (0700). The other user's: a 0700 home with a readable file.
  const std::string root_dir = "/root/osh-secret-" + tag;
  const std::string home = "/tmp/osh-home-" + tag;
  REQUIRE(::mkdir(root_dir.c_str(), 0755) == 0);
  { std::ofstream(root_dir + "/secret") << "root only\n"; }
  REQUIRE(::chmod((root_dir + "/secret").c_str(), 0644) == 0);
  REQUIRE(::mkdir(home.c_str(), 0700) == 0);
  { std::ofstream(home + "/notes") << "the other user's\n"; }
  REQUIRE(::chmod((home + "/notes").c_str(), 0644) == 0);
  REQUIRE(::mkdir((home + "/work").c_str(), 0777) == 0);
  REQUIRE(::chmod((home + "/work").c_str(), 0777) == 0);
  REQUIRE(::chown(home.c_str(), other.uid(), other.uid()) == 0);
  struct Cleanup {
    std::string a, b;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(a, ec);
      std::filesystem::remove_all(b, ec);
    }
  } cleanup{root_dir, home};
  const auto member_ctl = [&](std::vector<std::string> args) {
    return ctl_as(d, member.uid(), {group.gid()}, std::move(args));
  };
  // The policies live where the member can read them.
  const std::string policies = "/tmp/osh-policies-" + tag;
  REQUIRE(::mkdir(policies.c_str(), 0755) == 0);
  struct RemovePolicies {
    std::string dir;
    ~RemovePolicies() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } remove_policies{policies};
  const std::vector<std::pair<std::string, std::string>> leaks = {
      {"root-ro", test_policy(", \"" + root_dir + "\"", "include_workdir = true\n")},
      {"home-ro", test_policy(", \"" + home + "/notes\"", "include_workdir = true\n")},
      {"home-rw",
       test_policy("", "include_workdir = true\nread_write = [\"" + home + "/work\"]\n")},
  };
  for (const auto& [label, text] : leaks) {
    const std::string file = policies + "/" + label + ".toml";
    { std::ofstream(file) << text; }
    REQUIRE(::chmod(file.c_str(), 0644) == 0);
    INFO(label);
    // 1. sandbox create --policy-file
    const std::string name = unique_name("leak");
    d.delete_at_end(name);
    auto created = member_ctl({"sandbox", "create", name, "--policy-file", file});
    INFO(created.out << created.err);
    CHECK(created.exit_code == 1);
    CHECK(created.err.find("cannot reach it on the host") != std::string::npos);
    // 2. run --policy-file: nothing of it is printed.
    auto ran = member_ctl({"run", "--policy-file", file, "--", "/bin/sh", "-c",
                           "cat " + root_dir + "/secret " + home + "/notes; ls " + home + "/work"});
    INFO(ran.out << ran.err);
    CHECK(ran.exit_code != 0);
    CHECK(ran.out.find("root only") == std::string::npos);
    CHECK(ran.out.find("the other user's") == std::string::npos);
    CHECK(ran.err.find("cannot reach it on the host") != std::string::npos);
    // 3. policy set on a stopped sandbox, then start.
    const std::string later = unique_name("later");
    d.delete_at_end(later);
    REQUIRE(member_ctl({"sandbox", "create", later}).exit_code == 0);
    REQUIRE(member_ctl({"sandbox", "stop", later}).exit_code == 0);
    (void)member_ctl({"policy", "set", later, file});
    auto started = member_ctl({"sandbox", "start", later});
    INFO(started.out << started.err);
    CHECK(started.exit_code == 1);
    CHECK(started.err.find("cannot reach it on the host") != std::string::npos);
    CHECK(member_ctl({"sandbox", "delete", later}).exit_code == 0);
  }
  // Root may bind what root can reach.
  auto as_root = d.ctl({"run", "--policy-file", policies + "/root-ro.toml", "--", "/bin/cat",
                        root_dir + "/secret"});
  INFO(as_root.err);
  CHECK(as_root.exit_code == 0);
  CHECK(as_root.out == "root only\n");
}

// Issue 13.B: the daemon's caps on what a member's policy may ask for, and on how many
// sandboxes each member may have.
TEST_CASE("openshelld: a member's limits stay within the daemon's caps") {
  OpenshellGroup group;
  TestUser member("c");
  member.join("openshell");
  Daemon d(false, "max_sandboxes_per_user = 2\nmax_memory = \"1G\"\n[sandbox_defaults]\n"
                  "memory_max = \"512M\"\n");
  const auto member_ctl = [&](std::vector<std::string> args) {
    return ctl_as(d, member.uid(), {group.gid()}, std::move(args));
  };
  const std::string file = "/tmp/osh-big-" + std::to_string(::getpid()) + ".toml";
  { std::ofstream(file) << test_policy("", "include_workdir = true\n[resources]\nmemory_max = \"2G\"\n"); }
  REQUIRE(::chmod(file.c_str(), 0644) == 0);
  auto big = member_ctl({"sandbox", "create", unique_name("big"), "--policy-file", file});
  CHECK(big.exit_code == 1);
  CHECK(big.err.find("resources.memory_max 2147483648 is above this host's limit for non-root "
                     "callers (1073741824)") != std::string::npos);
  // Root is not capped.
  const std::string roots = unique_name("rootbig");
  d.delete_at_end(roots);
  CHECK(d.ctl({"sandbox", "create", roots, "--policy-file", file}).exit_code == 0);
  ::unlink(file.c_str());
  // The default (512M) fits; two sandboxes, and a third is refused.
  const std::string a = unique_name("a"), b = unique_name("b"), c = unique_name("c");
  for (const auto& n : {a, b, c}) d.delete_at_end(n);
  CHECK(member_ctl({"sandbox", "create", a}).exit_code == 0);
  CHECK(member_ctl({"sandbox", "create", b}).exit_code == 0);
  auto third = member_ctl({"sandbox", "create", c});
  CHECK(third.exit_code == 1);
  CHECK(third.err.find("at most 2 sandboxes per user") != std::string::npos);
}

// Issue 13.3 (and 6): a host project directory at /sandbox, the agent writing as its owner;
// --env kept with the sandbox; each --env one value, the command after -- untouched.
TEST_CASE("openshellctl sandbox create --workdir: the caller's directory; checked; never a link") {
  OpenshellGroup group;
  TestUser member("w"), other("x");
  member.join("openshell");
  Daemon d;
  const auto member_ctl = [&](std::vector<std::string> args) {
    return ctl_as(d, member.uid(), {group.gid()}, std::move(args));
  };
  const std::string tag = std::to_string(::getpid());
  const std::string project = "/tmp/osh-project-" + tag;
  const std::string others = "/tmp/osh-others-" + tag;
  for (const auto& [dir, owner] : {std::pair{project, member.uid()}, {others, other.uid()}}) {
    REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
    REQUIRE(::chown(dir.c_str(), owner, owner) == 0);
  }
  struct Cleanup {
    std::vector<std::string> dirs;
    ~Cleanup() {
      std::error_code ec;
      for (const auto& dir : dirs) std::filesystem::remove_all(dir, ec);
    }
  } cleanup{{project, others, project + "-link"}};

  const std::string name = unique_name("proj");
  d.delete_at_end(name);
  auto created = member_ctl({"sandbox", "create", name, "--workdir", project, "--env", "FOO=bar",
                             "--env", "EMPTY=", "--", "/bin/sh", "-c",
                             "echo \"$FOO:$EMPTY\" > /sandbox/env; sleep infinity"});
  INFO(created.out << created.err);
  REQUIRE(created.exit_code == 0);
  REQUIRE(eventually([&] { return read_text(project + "/env") == "bar:\n"; }));
  struct stat st {};
  REQUIRE(::stat((project + "/env").c_str(), &st) == 0);
  CHECK(st.st_uid == member.uid());
  // exec writes there too, as the member; stop and start keep the directory and the env.
  CHECK(member_ctl({"exec", name, "--", "sh", "-c", "echo hi > /sandbox/from-exec"}).exit_code == 0);
  CHECK(read_text(project + "/from-exec") == "hi\n");
  REQUIRE(::unlink((project + "/env").c_str()) == 0);
  CHECK(member_ctl({"sandbox", "stop", name}).exit_code == 0);
  CHECK(member_ctl({"sandbox", "start", name}).exit_code == 0);
  CHECK(eventually([&] { return read_text(project + "/env") == "bar:\n"; }));
  // Deleting the sandbox leaves the directory.
  CHECK(member_ctl({"sandbox", "delete", name}).exit_code == 0);
  CHECK(path_exists(project + "/from-exec"));

  // Read-only: the agent reads, never writes.
  const std::string ro = unique_name("ro");
  d.delete_at_end(ro);
  REQUIRE(member_ctl({"sandbox", "create", ro, "--workdir", project, "--workdir-readonly"})
              .exit_code == 0);
  CHECK(member_ctl({"exec", ro, "--", "cat", "/sandbox/from-exec"}).out == "hi\n");
  CHECK(member_ctl({"exec", ro, "--", "touch", "/sandbox/new"}).exit_code != 0);
  CHECK_FALSE(path_exists(project + "/new"));
  CHECK(member_ctl({"sandbox", "delete", ro}).exit_code == 0);

  // run --workdir too.
  auto ran = member_ctl({"run", "--workdir", project, "--env", "X=1", "--", "sh", "-c",
                         "echo $X > /sandbox/from-run"});
  INFO(ran.err);
  CHECK(ran.exit_code == 0);
  CHECK(read_text(project + "/from-run") == "1\n");

  // Refused: another user's directory, system directories, a file, what is missing.
  const auto refused = [&](const std::vector<std::string>& args, const std::string& why) {
    auto r = member_ctl(args);
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.err.find(why) != std::string::npos);
  };
  refused({"sandbox", "create", unique_name("no"), "--workdir", others}, "is not yours");
  refused({"run", "--workdir", others, "--", "true"}, "is not yours");
  refused({"sandbox", "create", unique_name("no"), "--workdir", "/etc"}, "is a system directory");
  refused({"sandbox", "create", unique_name("no"), "--workdir", "/"}, "no project directory");
  refused({"sandbox", "create", unique_name("no"), "--workdir", project + "/from-run"},
          "not a directory");
  refused({"sandbox", "create", unique_name("no"), "--workdir", project + "/missing"},
          "No such file");
  // Root may name any directory not owned by root, and not a system one.
  refused({"sandbox", "create", unique_name("no"), "--workdir", "/usr"}, "is a system directory");
  auto root_owned = d.ctl({"sandbox", "create", unique_name("no"), "--workdir", d.dir().path()});
  CHECK(root_owned.exit_code != 0);
  CHECK(root_owned.err.find("is owned by root") != std::string::npos);
  const std::string roots = unique_name("rootproj");
  d.delete_at_end(roots);
  CHECK(d.ctl({"sandbox", "create", roots, "--workdir", others}).exit_code == 0);

  // The daemon follows no symlink: a path through one is refused, whoever asks.
  REQUIRE(::symlink(project.c_str(), (project + "-link").c_str()) == 0);
  sd_bus* bus = d.open_bus();
  sd_bus_error error = SD_BUS_ERROR_NULL;
  sd_bus_message* reply = nullptr;
  const std::string linked = unique_name("linked");
  const int rc = sd_bus_call_method(bus, "org.openshell.Manager1", "/org/openshell/Manager1",
                                    "org.openshell.Manager1", "CreateSandbox", &error, &reply,
                                    "ssasa{sv}", linked.c_str(), "", 0, 1, "workdir", "s",
                                    (project + "-link").c_str());
  CHECK(rc < 0);
  CHECK(std::string(error.message != nullptr ? error.message : "").find("has a symlink in it") !=
        std::string::npos);
  sd_bus_error_free(&error);
  sd_bus_message_unref(reply);
  sd_bus_flush_close_unref(bus);
}

// Issue 13.4: a create whose command ends at once, a later end, a missing command: what
// happened, in the error, in get and in list. A create answers once its command runs (the
// supervisor's "launched"): one that ends right after is stopped with how it ended, always
// (issue 14; before, its create failed or not depending on how fast it ended).
TEST_CASE("openshelld: how a sandbox's command ended, in the error, get and list") {
  Daemon d;
  const std::string quick = unique_name("quick"), missing = unique_name("missing"),
                    later = unique_name("later");
  for (const auto& n : {quick, missing, later}) d.delete_at_end(n);
  auto q = d.ctl({"sandbox", "create", quick, "--", "/bin/sh", "-c", "exit 3"});
  CHECK(q.exit_code == 0);
  auto m = d.ctl({"sandbox", "create", missing, "--", "/no/such/command"});
  CHECK(m.exit_code == 1);
  CHECK(m.err.find("command not found") != std::string::npos);
  CHECK(m.err.find("/no/such/command") != std::string::npos);
  REQUIRE(d.ctl({"sandbox", "create", later, "--", "/bin/sh", "-c", "sleep 0.3; exit 5"})
              .exit_code == 0);
  auto get = [&](const std::string& n) {
    auto r = d.ctl({"--json", "sandbox", "get", n});
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out);
  };
  REQUIRE(eventually([&] { return get(later)["phase"] == "stopped"; }));
  REQUIRE(eventually([&] { return get(quick)["phase"] == "stopped"; }));
  CHECK(get(quick)["reason"] == "the command exited with status 3");
  CHECK(get(later)["exit_status"] == 5);
  CHECK(get(later)["reason"] == "the command exited with status 5");
  CHECK(get(quick)["exit_status"] == 3);
  CHECK(get(missing)["exit_status"] == 127);
  CHECK(get(missing)["phase"] == "failed");
  auto listed = nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out);
  size_t seen = 0;
  for (const auto& row : listed) {
    if (row["name"] == later) {
      CHECK(row["exit_status"] == 5);
      CHECK(row["reason"] == "the command exited with status 5");
      ++seen;
    }
    if (row["name"] == missing) {
      CHECK(row["exit_status"] == 127);
      ++seen;
    }
  }
  CHECK(seen == 2);
  const auto table = d.ctl({"sandbox", "list"}).out;
  CHECK(table.find("EXIT") != std::string::npos);
  CHECK(table.find("the command exited with status 5") != std::string::npos);
  // Started again: running, no exit status until it ends again.
  REQUIRE(d.ctl({"sandbox", "start", later}).exit_code == 0);
  CHECK(eventually([&] { return get(later)["exit_status"] == 5 && get(later)["phase"] == "stopped"; }));
}

// Issue 13.5: exec and run exit as a shell and docker do: 126 cannot execute, 127 not found,
// the command's own code otherwise; a missing --workdir is named.
TEST_CASE("openshellctl exec and run: 126, 127 and the command's own code") {
  Daemon d;
  const std::string name = d.create("codes");
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"exec", name, "--", "/no/such"}, 127, "cannot run /no/such: No such file or directory"},
      {{"exec", name, "--", "nosuchcommand"}, 127,
       "cannot run nosuchcommand: No such file or directory"},
      {{"exec", name, "--", "/etc/passwd"}, 126, "cannot run /etc/passwd: Permission denied"},
      {{"exec", name, "--workdir", "/nope", "--", "/bin/true"}, 126,
       "cannot enter the working directory /nope: No such file or directory"},
      {{"exec", name, "--", "/bin/sh", "-c", "exit 42"}, 42, ""},
      {{"exec", name, "--env", "A=b", "--", "/bin/sh", "-c", "exit 7"}, 7, ""},
      {{"run", "--", "/no/such"}, 127, "cannot run /no/such: No such file or directory"},
      {{"run", "--", "/etc/passwd"}, 126, "cannot run /etc/passwd: Permission denied"},
      {{"run", "--env", "A=b", "--", "/bin/sh", "-c", "exit 9"}, 9, ""},
  };
  for (const Case& c : cases) {
    auto r = d.ctl(c.args);
    INFO(c.args[0] << " " << c.args.back() << ": " << r.err);
    CHECK(r.exit_code == c.code);
    if (!c.says.empty()) CHECK(r.err == "openshellctl: " + c.says + "\n");
  }
}

// Issue 13.7 and 13.13: --json before or after the command, one JSON value from each command;
// several names at once; ls and rm.
TEST_CASE("openshellctl: --json anywhere, one value each; several names; ls and rm") {
  Daemon d;
  const std::string a = d.create("multi"), b = d.create("multi");
  const auto one_value = [&](std::vector<std::string> args) {
    auto r = d.ctl(std::move(args));
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    auto parsed = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    CHECK_FALSE(parsed.is_discarded());
    return parsed;
  };
  CHECK(one_value({"sandbox", "list", "--json"}).size() == 2);
  CHECK(one_value({"sandbox", "ls", "--json"}).size() == 2);
  CHECK(one_value({"--json", "sandbox", "get", a})["name"] == a);
  CHECK(one_value({"sandbox", "get", a, "--json"})["name"] == a);
  CHECK(one_value({"status", "--json"}).contains("driver"));
  CHECK(one_value({"policy", "list", "--json"}).is_array());
  CHECK(one_value({"policy", "show", "default", "--json"})["name"] == "default");
  CHECK(one_value({"policy", "reload", "--json"}).contains("applied"));
  auto stopped = one_value({"sandbox", "stop", a, b, "--json"});
  REQUIRE(stopped.size() == 2);
  CHECK(stopped[0] == nlohmann::json{{"name", a}, {"done", "stopped"}});
  CHECK(stopped[1] == nlohmann::json{{"name", b}, {"done", "stopped"}});
  auto started = one_value({"--json", "sandbox", "start", a});
  CHECK(started[0]["done"] == "started");
  // Several names: each is tried; one that fails makes the exit status 1 and is named.
  auto removed = d.ctl({"sandbox", "rm", a, "no-such-sandbox", b});
  CHECK(removed.exit_code == 1);
  CHECK(removed.out == "deleted " + a + "\ndeleted " + b + "\n");
  CHECK(removed.err.find("no sandbox no-such-sandbox") != std::string::npos);
  CHECK(one_value({"sandbox", "list", "--json"}).empty());
}

// The shell completions (completions/) ask `openshellctl __complete`; names come from the
// daemon as the caller sees them.
TEST_CASE("openshellctl __complete: sandbox and policy names from the daemon") {
  // (As the caller sees them: the same ListSandboxes a member's `sandbox list` gets.)
  Daemon d;
  const std::string name = d.create("complete");
  const auto complete = [&](std::vector<std::string> words) {
    words.insert(words.begin(), {OPENSHELL_CTL_BIN, "__complete", "--bus", d.address()});
    auto r = run_process(words, 60);
    REQUIRE(r.exit_code == 0);
    return r.out;
  };
  CHECK(complete({"exec", ""}) == name + "\n");
  CHECK(complete({"sandbox", "stop", name, ""}) == name + "\n");  // NAME...: any number
  CHECK(complete({"policy", "history", ""}) == name + "\n");
  CHECK(complete({"sandbox", "create", "x", "--policy", ""}) == "default\n");
  CHECK(complete({"policy", "show", ""}) == "default\n");
  // Providers and routes: names from their List calls.
  ::setenv("COMPLETE_KEY", "not-a-secret", 1);
  REQUIRE(d.ctl({"provider", "create", "pc", "--type", "generic", "--credential", "COMPLETE_KEY"})
              .exit_code == 0);
  ::unsetenv("COMPLETE_KEY");
  REQUIRE(d.ctl({"inference", "route", "set", "rc", "--base-url", "http://127.0.0.1:9",
                 "--provider", "pc", "--model", "m"})
              .exit_code == 0);
  CHECK(complete({"provider", "get", ""}) == "pc\n");
  CHECK(complete({"sandbox", "create", "x", "--provider", ""}) == "pc\n");
  CHECK(complete({"inference", "route", "delete", ""}) == "rc\n");
  CHECK(complete({"sandbox", "create", "x", "--inference", ""}) == "rc\n");
}

// Issue 13.9: without --tty, a signal to openshellctl (^C in a terminal, a service manager's
// SIGTERM, a hang-up) goes to the command, as docker run does; the exit status is the command's.
TEST_CASE("openshellctl exec and run: SIGINT, SIGTERM, SIGHUP and SIGQUIT reach the command") {
  Daemon d;
  const std::string name = d.create("sig");
  struct Case {
    std::vector<std::string> args;
    int sig;
    int code;
    std::string says;
  };
  const std::string script =
      "trap 'echo got INT; exit 7' INT; trap 'echo got TERM; exit 9' TERM; echo ready; "
      "sleep 30 & wait";
  const std::vector<Case> cases = {
      {{"exec", name, "--", "/bin/sh", "-c", script}, SIGINT, 7, "got INT"},
      {{"exec", name, "--", "/bin/sh", "-c", script}, SIGTERM, 9, "got TERM"},
      {{"run", "--", "/bin/sh", "-c", script}, SIGTERM, 9, "got TERM"},
      {{"run", "--", "/bin/sh", "-c", script}, SIGINT, 7, "got INT"},
      {{"run", "--", "/bin/sh", "-c", "echo ready; exec sleep 30"}, SIGHUP, 128 + SIGHUP, ""},
      {{"exec", name, "--", "/bin/sh", "-c", "echo ready; exec sleep 30"}, SIGQUIT,
       128 + SIGQUIT, ""},
  };
  for (const Case& c : cases) {
    INFO(c.args[0] << " " << c.sig);
    std::vector<std::string> argv = {OPENSHELL_CTL_BIN, "--bus", d.address()};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const std::string out = d.dir().path() + "/" + unique_name("sig") + ".out";
    const pid_t ctl = spawn_process(argv, out);
    // The command runs: openshellctl has its signals in hand since before it asked for it.
    REQUIRE(eventually([&] { return read_text(out).find("ready") != std::string::npos; }));
    REQUIRE(::kill(ctl, c.sig) == 0);
    int status = 0;
    REQUIRE(::waitpid(ctl, &status, 0) == ctl);
    CHECK(WIFEXITED(status));  // openshellctl itself was not killed
    CHECK(WEXITSTATUS(status) == c.code);
    if (!c.says.empty()) CHECK(read_text(out).find(c.says) != std::string::npos);
  }
}

TEST_CASE("openshelld: garbage on the bus gets an error reply and the daemon keeps serving") {
  Daemon d;
  sd_bus* bus = d.open_bus();
  auto call = [&](const char* method, const char* types, auto... args) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    const int rc = sd_bus_call_method(bus, "org.openshell.Manager1", "/org/openshell/Manager1",
                                      "org.openshell.Manager1", method, &error, &reply, types,
                                      args...);
    std::string name = error.name != nullptr ? error.name : "";
    sd_bus_error_free(&error);
    sd_bus_message_unref(reply);
    return std::make_pair(rc, name);
  };
  // Wrong argument types, a missing method, unknown and hostile names, a huge string.
  CHECK(call("CreateSandbox", "u", 7u).first < 0);
  CHECK(call("GetSandbox", "i", 1).first < 0);
  CHECK(call("NoSuchMethod", "").first < 0);
  CHECK(call("GetSandbox", "s", "no-such").second == "org.openshell.Error.NotFound");
  CHECK(call("GetSandbox", "s", "../../etc").second == "org.openshell.Error.NotFound");
  CHECK(call("DeleteSandbox", "s", "a/b").second == "org.openshell.Error.NotFound");
  const std::string huge(100000, 'a');
  CHECK(call("CreateSandbox", "ssasa{sv}", huge.c_str(), "", 0, 0).second ==
        "org.openshell.Error.InvalidArgument");
  CHECK(call("CreateSandbox", "ssasa{sv}", "ok-name", huge.c_str(), 0, 0).second ==
        "org.openshell.Error.InvalidArgument");
  // Options: an unknown key, a wrong type, read-only without a workdir.
  CHECK(call("CreateSandbox", "ssasa{sv}", "ok-name", "", 0, 1, "bogus", "s", "x").second ==
        "org.openshell.Error.InvalidArgument");
  CHECK(call("CreateSandbox", "ssasa{sv}", "ok-name", "", 0, 1, "workdir", "u", 7u).first < 0);
  CHECK(call("CreateSandbox", "ssasa{sv}", "ok-name", "", 0, 1, "workdir_readonly", "b", 1)
            .second == "org.openshell.Error.InvalidArgument");
  sd_bus_flush_close_unref(bus);
  // Still serving.
  CHECK(d.ctl({"status"}).exit_code == 0);
  const std::string name = d.create("after");
  CHECK(d.ctl({"exec", name, "--", "echo", "ok"}).out == "ok\n");
}

// curl in the sandbox: the body and " <http status>" (" 403" when the proxy refuses).
std::string curl_in(Daemon& d, const std::string& sandbox, const std::string& url) {
  return d.ctl({"exec", sandbox, "--", "/usr/bin/curl", "-s", "-m", "10", "-w", " %{http_code}",
                url})
      .out;
}

TEST_CASE("openshelld: policy reload adds and removes endpoints in running sandboxes") {
  UpstreamHost up;
  up.start(8080, "echo");
  up.start(8081, "http");
  Daemon d;
  const std::string base = test_policy("", "include_workdir = true\n");
  auto with_endpoint = [&](const std::string& port) {
    return base + "[network_policies.up]\n[[network_policies.up.endpoints]]\nhost = \"" +
           up.address() + "\"\nports = [" + port + "]\n";
  };
  d.dir().write("policies/web.toml", base);
  const std::string name = unique_name("web");
  d.delete_at_end(name);
  REQUIRE(d.ctl({"sandbox", "create", name, "--policy", "web"}).exit_code == 0);
  auto curl = [&] { return curl_in(d, name, "http://" + up.address() + ":8081/x"); };
  CHECK(curl().find(" 403") != std::string::npos);

  // Added: reachable at once, without re-creating; a new revision.
  d.dir().write("policies/web.toml", with_endpoint("8080, 8081"));
  auto added = d.ctl({"policy", "reload"});
  CHECK(added.exit_code == 0);
  CHECK(added.out.find("applied      " + name) != std::string::npos);
  CHECK(curl().find("upstream ok: GET /x") != std::string::npos);
  CHECK(d.ctl({"sandbox", "get", name}).out.find("revision  2") != std::string::npos);

  // A tunnel through the new endpoint, held open by a command in the sandbox.
  const std::string tunnel_out = d.dir().path() + "/tunnel.out";
  pid_t tunnel = spawn_process({OPENSHELL_CTL_BIN, "--bus", d.address(), "exec", name, "--",
                                helper("connect_tunnel"), "10.200.0.1", "3128",
                                up.address() + ":8080", "60"},
                               tunnel_out);
  REQUIRE(eventually([&] { return read_text(tunnel_out).find("tunnel 200") != std::string::npos; }));

  // Broken: rejected with file:line:col, nothing changes anywhere.
  d.dir().write("policies/web.toml", "version = 1\n[network_policies.x\n");
  auto broken = d.ctl({"policy", "reload"});
  CHECK(broken.exit_code == 1);
  CHECK(broken.err.find("web.toml:2:") != std::string::npos);
  CHECK(read_text(tunnel_out).find("tunnel closed") == std::string::npos);
  CHECK(curl().find("upstream ok") != std::string::npos);
  // ...and the sandbox's own event stream says so, with the revision that stays.
  auto config_events = d.ctl({"--json", "logs", name, "--class", "config", "-n", "100"}).out;
  CHECK(config_events.find("policy reload rejected; revision 2 stays in force") !=
        std::string::npos);
  CHECK(config_events.find("web.toml:2:") != std::string::npos);
  auto validate = d.ctl({"policy", "validate", d.dir().path() + "/policies/web.toml"});
  CHECK(validate.exit_code == 1);
  CHECK(validate.err.find("web.toml:2:") != std::string::npos);

  // Removed: the open tunnel is closed, new requests are refused.
  d.dir().write("policies/web.toml", base);
  CHECK(d.ctl({"policy", "reload"}).exit_code == 0);
  CHECK(eventually([&] { return read_text(tunnel_out).find("tunnel closed") != std::string::npos; }));
  int status = 0;
  ::waitpid(tunnel, &status, 0);
  CHECK(curl().find(" 403") != std::string::npos);
  CHECK(d.ctl({"sandbox", "get", name}).out.find("revision  3") != std::string::npos);

  // Outside network_policies: reported as needing re-creation, not applied.
  d.dir().write("policies/web.toml",
                test_policy(", \"/srv\"", "include_workdir = true\n"));
  auto statics = d.ctl({"policy", "reload"});
  CHECK(statics.exit_code == 3);  // issue 13.12: not applied everywhere is its own status
  CHECK(statics.out.find("not applied  " + name) != std::string::npos);
  CHECK(d.ctl({"sandbox", "get", name}).out.find("revision  3") != std::string::npos);
  auto names = d.ctl({"policy", "list"});
  CHECK(names.out.find("default\n") != std::string::npos);
  CHECK(names.out.find("web\n") != std::string::npos);
  CHECK(d.ctl({"policy", "show", "web"}).out.find("/srv") != std::string::npos);
  CHECK(d.ctl({"sandbox", "delete", name}).exit_code == 0);
}

TEST_CASE("openshelld: policy set, get, history and rollback on one sandbox") {
  UpstreamHost up;
  up.start(8081, "http");
  Daemon d;
  const std::string base = test_policy("", "include_workdir = true\n");
  const std::string open = base + "[network_policies.up]\n[[network_policies.up.endpoints]]\nhost = \"" +
                           up.address() + "\"\nports = [8081]\n";
  d.dir().write("policies/web.toml", base);
  const std::string name = unique_name("set");
  d.delete_at_end(name);
  REQUIRE(d.ctl({"sandbox", "create", name, "--policy", "web"}).exit_code == 0);
  auto curl = [&] { return curl_in(d, name, "http://" + up.address() + ":8081/x"); };
  CHECK(curl().find(" 403") != std::string::npos);

  // set: the sandbox's own policy, in force at once, as revision 2.
  const std::string file = d.dir().write("open.toml", open);
  auto set = d.ctl({"policy", "set", name, file});
  CHECK(set.exit_code == 0);
  CHECK(set.out == name + " is on revision 2\n");
  CHECK(curl().find("upstream ok: GET /x") != std::string::npos);
  CHECK(d.ctl({"policy", "get", name}).out == open);
  CHECK(d.ctl({"policy", "get", name, "--revision", "1"}).out == base);
  // Issue 13.13: the list says where its policy now comes from, not the named one it left.
  auto row = nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out)[0];
  CHECK(row["policy"] == "");
  CHECK(row["source"] == "set from " + file);
  CHECK(d.ctl({"sandbox", "list"}).out.find("(set from " + file) != std::string::npos);

  // Pinned: a reload of its named policy passes it by.
  d.dir().write("policies/web.toml", base + "# edited\n");
  auto reload = d.ctl({"policy", "reload"});
  CHECK(reload.exit_code == 0);
  CHECK(reload.out.find(name) == std::string::npos);
  CHECK(d.ctl({"policy", "get", name}).out == open);

  // Refused, and nothing changes: a broken policy (with file:line:col) and a static change.
  const std::string broken = d.dir().write("broken.toml", "version = 1\n[network_policies.x\n");
  auto bad = d.ctl({"policy", "set", name, broken});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("broken.toml:2:") != std::string::npos);
  const std::string statics =
      d.dir().write("statics.toml", test_policy(", \"/srv\"", "include_workdir = true\n"));
  auto refused = d.ctl({"policy", "set", name, statics});
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("re-create") != std::string::npos);
  // Issue 13.11: it names what differs.
  INFO(refused.err);
  CHECK(refused.err.find("filesystem_policy.read_only: [") != std::string::npos);
  CHECK(refused.err.find("\"/srv\"]") != std::string::npos);
  CHECK(d.ctl({"policy", "get", name}).out == open);
  // rollback: revision 1's text again, as revision 3; the endpoint is closed again.
  auto back = d.ctl({"policy", "rollback", name});
  CHECK(back.exit_code == 0);
  CHECK(back.out == name + " is on revision 3\n");
  CHECK(curl().find(" 403") != std::string::npos);
  CHECK(d.ctl({"policy", "rollback", name, "--to", "3"}).exit_code == 1);  // already on it
  CHECK(d.ctl({"policy", "rollback", name, "--to", "9"}).exit_code == 1);

  auto history = nlohmann::json::parse(d.ctl({"--json", "policy", "history", name}).out);
  REQUIRE(history.size() == 3);
  CHECK(history[0]["origin"] == "created from policy web");
  CHECK(history[1]["origin"] == "set from " + file);
  CHECK(history[2]["origin"] == "rollback to 1");
  CHECK(history[2]["current"] == true);
  CHECK(history[0]["time_unix_ms"].get<int64_t>() > 0);
  auto table = d.ctl({"policy", "history", name});
  CHECK(table.out.find("rollback to 1") != std::string::npos);

  // Stopped: any valid policy is taken, and is what the sandbox starts with.
  REQUIRE(d.ctl({"sandbox", "stop", name}).exit_code == 0);
  REQUIRE(d.ctl({"policy", "set", name, statics}).exit_code == 0);
  REQUIRE(d.ctl({"sandbox", "start", name}).exit_code == 0);
  CHECK(d.ctl({"exec", name, "--", "/bin/sh", "-c", "test -d /srv && echo srv"}).out == "srv\n");
  CHECK(d.ctl({"policy", "get", "no-such-sandbox"}).exit_code == 1);
  CHECK(d.ctl({"policy", "set", name}).exit_code == 2);
  // A file with only [network_policies]: its static sections are the running ones, not the
  // built-in defaults (which differ from this sandbox's [filesystem_policy]).
  const std::string only_net = d.dir().write(
      "net.toml", "version = 1\n[network_policies.up]\n[[network_policies.up.endpoints]]\nhost = \"" +
                      up.address() + "\"\nports = [8081]\n");
  auto kept = d.ctl({"policy", "set", name, only_net, "--json"});  // --json after, too
  INFO(kept.err);
  CHECK(kept.exit_code == 0);
  CHECK(nlohmann::json::parse(kept.out)["revision"] == 5);
  const std::string now = d.ctl({"policy", "get", name}).out;
  CHECK(now.find("# From the running revision") != std::string::npos);
  CHECK(now.find("/srv") != std::string::npos);
  CHECK(curl().find("upstream ok: GET /x") != std::string::npos);
  CHECK(d.ctl({"exec", name, "--", "/bin/sh", "-c", "test -d /srv && echo srv"}).out == "srv\n");

  CHECK(d.ctl({"sandbox", "delete", name}).exit_code == 0);
}

TEST_CASE("openshellctl exec --tty and connect: a terminal of the command's own") {
  Daemon d;
  const std::string name = d.create("tty");
  const std::string ctl = std::string(OPENSHELL_CTL_BIN) + " --bus " + d.address();
  // Input from a pipe: relayed to the pty, which the shell has as its controlling terminal.
  auto piped = run_process(
      {"/bin/sh", "-c",
       "printf 'test -t 0 && test -t 1 && echo TTY-OK; exec 3</dev/tty && echo CTTY-OK; "
       "exit 3\\n' | " + ctl + " exec --tty " + name + " -- /bin/sh"});
  CHECK(piped.exit_code == 3);
  CHECK(piped.out.find("TTY-OK") != std::string::npos);
  CHECK(piped.out.find("CTTY-OK") != std::string::npos);
  // Without --tty the same command has no terminal.
  auto plain = d.ctl({"exec", name, "--", "/bin/sh", "-c", "test -t 0 || echo no-tty"});
  CHECK(plain.out == "no-tty\n");
  // connect from a real terminal (script(1) makes one): raw keys in, its size followed, the
  // shell's exit code out.
  auto connected = run_process(
      {"/bin/sh", "-c",
       "(sleep 1; printf 'stty size; exit 5\\r'; sleep 3) | script -qec 'stty rows 40 cols 100; " +
           ctl + " connect " + name + "' /dev/null"});
  CHECK(connected.exit_code == 5);
  CHECK(connected.out.find("40 100") != std::string::npos);
  CHECK(d.ctl({"exec", "--tty", "no-such-sandbox", "--", "true"}).exit_code == 1);
  // Issue 13.9: the terminal is the sandbox's own: `tty` names it, it is in the sandbox's
  // /dev/pts and the agent owns it; the first byte the command reads is the first one sent.
  auto named = run_process(
      {"/bin/sh", "-c",
       "printf 'ab\\n' | " + ctl + " exec --tty " + name +
           " -- /bin/sh -c 'tty; test -c $(tty) && stat -c %U $(tty); ls /dev/pts; "
           "head -c 3 | od -An -c'"});
  INFO(named.out << named.err);
  CHECK(named.exit_code == 0);
  CHECK(named.out.find("\n/dev/pts/") != std::string::npos);  // after the echo of the input
  CHECK(named.out.find("not a tty") == std::string::npos);
  CHECK(named.out.find("sandbox\r\n") != std::string::npos);
  CHECK(named.out.find("   a   b  \\n") != std::string::npos);
  CHECK(named.out.find("\\0") == std::string::npos);
}

TEST_CASE("openshellctl upload and download: trees in and out, never through the agent's links") {
  Daemon d;
  const std::string name = d.create("copy");
  const std::string workspace = d.dir().path() + "/state/workspaces/" + name;
  const std::string local = d.dir().path() + "/local";
  std::filesystem::create_directories(local + "/proj/sub");
  { std::ofstream(local + "/proj/a.txt") << "one\n"; }
  { std::ofstream(local + "/proj/sub/b.txt") << "two\n"; }
  std::filesystem::create_symlink("a.txt", local + "/proj/link-in");
  std::filesystem::create_symlink("/etc/passwd", local + "/proj/link-out");

  // In: the tree, with the symlink that stays inside; the one that would not is refused.
  auto in = d.ctl({"upload", name, local + "/proj"});
  CHECK(in.exit_code == 1);
  CHECK(in.out == "2 file(s), 2 directory(ies), 1 symlink(s), 8 bytes\n");
  CHECK(in.err.find("link-out: symlink to /etc/passwd would lead outside") != std::string::npos);
  CHECK(d.ctl({"exec", name, "--", "cat", "/sandbox/proj/link-in", "/sandbox/proj/sub/b.txt"}).out ==
        "one\ntwo\n");
  // Root's copies belong to the workspace's owner, as the agent's own files do.
  struct stat ws {}, copied {};
  REQUIRE(::stat(workspace.c_str(), &ws) == 0);
  REQUIRE(::stat((workspace + "/proj/a.txt").c_str(), &copied) == 0);
  CHECK(copied.st_uid == ws.st_uid);
  CHECK(copied.st_uid != 0);

  // What the agent can plant: a link out of the workspace, a link at the destination, a fifo.
  REQUIRE(d.ctl({"exec", name, "--", "/bin/sh", "-c",
                 "ln -s /etc /sandbox/evil && ln -s /etc/hostname /sandbox/target && "
                 "mkfifo /sandbox/pipe && ln -s /etc/shadow /sandbox/proj/shadow && "
                 "mkfifo /sandbox/proj/fifo"})
              .exit_code == 0);
  const std::string hostname_before = read_text("/etc/hostname");
  auto through_dir = d.ctl({"upload", name, local + "/proj/a.txt", "/sandbox/evil/x"});
  CHECK(through_dir.exit_code == 1);
  CHECK(through_dir.err.find("leads outside the workspace") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists("/etc/x"));
  auto onto_link = d.ctl({"upload", name, local + "/proj/a.txt", "target"});
  CHECK(onto_link.exit_code == 1);
  CHECK(onto_link.err.find("a symlink is in the way") != std::string::npos);
  CHECK(read_text("/etc/hostname") == hostname_before);
  auto onto_fifo = d.ctl({"upload", name, local + "/proj/a.txt", "pipe"});
  CHECK(onto_fifo.exit_code == 1);

  // Out: the tree; the agent's escaping link and its fifo are refused, the rest arrives.
  const std::string out = d.dir().path() + "/out";
  std::filesystem::create_directories(out);
  auto got = d.ctl({"download", name, "/sandbox/proj", out});
  CHECK(got.exit_code == 1);
  CHECK(got.err.find("shadow: symlink to /etc/shadow leads outside") != std::string::npos);
  CHECK(got.err.find("fifo: not a file, directory or symlink") != std::string::npos);
  CHECK(read_text(out + "/proj/sub/b.txt") == "two\n");
  CHECK(std::filesystem::read_symlink(out + "/proj/link-in") == "a.txt");
  CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(out + "/proj/shadow")));
  auto escape = d.ctl({"download", name, "evil/passwd", out + "/p"});
  CHECK(escape.exit_code == 1);
  CHECK(escape.err.find("leads outside the workspace") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(out + "/p"));
  // Paths outside /sandbox, and "..", are usage mistakes caught before anything is opened.
  CHECK(d.ctl({"download", name, "/etc/passwd", out}).exit_code == 1);
  CHECK(d.ctl({"download", name, "proj/../../x", out}).exit_code == 1);
  CHECK(d.ctl({"upload", "no-such-sandbox", local + "/proj"}).exit_code == 1);
  // Issue 13.13: nothing to copy is an error before any count is printed.
  auto missing = d.ctl({"upload", name, local + "/no-such-file"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.out.empty());
  CHECK(missing.err.find("no-such-file: No such file or directory") != std::string::npos);
}

TEST_CASE("openshellctl run: one command in a fresh sandbox, nothing left behind") {
  Daemon d;
  auto r = d.ctl({"run", "--", "/bin/sh", "-c", "echo in-run; exit 3"});
  CHECK(r.exit_code == 3);
  CHECK(r.out == "in-run\n");
  CHECK(d.ctl({"run", "--", "true"}).exit_code == 0);
  CHECK(nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out).empty());
  CHECK(std::filesystem::is_empty(d.dir().path() + "/state/sandboxes"));
  CHECK(std::filesystem::is_empty(d.dir().path() + "/state/workspaces"));
  // A policy of one's own, from a file: here one that also shows /srv.
  const std::string own = d.dir().write("own.toml", test_policy(", \"/srv\"", "include_workdir = true\n"));
  auto with_file = d.ctl({"run", "--policy-file", own, "--", "/bin/sh", "-c", "test -d /srv"});
  CHECK(with_file.exit_code == 0);
  CHECK(d.ctl({"run", "--policy", "default", "--policy-file", own, "--", "true"}).exit_code == 2);
  const std::string broken = d.dir().write("broken.toml", "version = 1\n[network_policies.x\n");
  auto bad = d.ctl({"run", "--policy-file", broken, "--", "true"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("broken.toml:2:") != std::string::npos);
  const std::string mine = unique_name("own");
  d.delete_at_end(mine);
  REQUIRE(d.ctl({"sandbox", "create", mine, "--policy-file", own}).exit_code == 0);
  CHECK(d.ctl({"sandbox", "get", mine}).out.find("policy    (created from " + own + ")") !=
        std::string::npos);
  CHECK(d.ctl({"sandbox", "delete", mine}).exit_code == 0);
  auto missing = d.ctl({"run", "--", "/no/such/command"});
  CHECK(missing.exit_code == 127);
  CHECK(nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out).empty());
}

// Issue 13.8: a failed run left its workspaces/run-* and sandboxes/run-* behind, with nothing
// able to remove them. Each way a run can fail removes what it made.
TEST_CASE("openshellctl run: a run that fails leaves nothing behind") {
  const auto nothing_left = [](Daemon& d) {
    for (const char* dir : {"/state/sandboxes", "/state/workspaces", "/state/revisions",
                            "/log/sandboxes"}) {
      INFO(dir);
      const std::string path = d.dir().path() + dir;
      CHECK((!std::filesystem::exists(path) || std::filesystem::is_empty(path)));
    }
    CHECK(nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out).empty());
  };
  {
    // The supervisor cannot be started at all.
    Daemon d(false, "", "/nonexistent/openshell-supervisor");
    auto r = d.ctl({"run", "--", "true"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("could not start the supervisor") != std::string::npos);
    nothing_left(d);
  }
  {
    // It starts and gives up at once; the command is missing; the policy names what root's
    // sandbox may not have (hard_requirement and a missing path).
    Daemon d(false, "", "/bin/false");
    CHECK(d.ctl({"run", "--", "true"}).exit_code == 1);
    nothing_left(d);
  }
  {
    Daemon d;
    CHECK(d.ctl({"run", "--", "/no/such/command"}).exit_code == 127);
    const std::string hard = d.dir().write(
        "hard.toml", test_policy(", \"/nonexistent-" + std::to_string(::getpid()) + "\"",
                                 "[landlock]\ncompatibility = \"hard_requirement\"\n"));
    auto r = d.ctl({"run", "--policy-file", hard, "--", "true"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("hard_requirement") != std::string::npos);
    nothing_left(d);
  }
}

TEST_CASE("openshelld: a command whose caller went away goes too") {
  Daemon d;
  const std::string name = d.create("gone");
  auto running = [](const std::string& pattern) {
    return run_process({"/usr/bin/pgrep", "-c", "-f", pattern}).out;
  };
  // exec: the client killed while the command, and what it started, run.
  pid_t client = spawn_process({OPENSHELL_CTL_BIN, "--bus", d.address(), "exec", name, "--",
                                "/bin/sh", "-c", "sleep 1002 & exec sleep 1003"},
                               d.dir().path() + "/exec.out");
  REQUIRE(eventually([&] { return running("^sleep 100[23]$") == "2\n"; }));
  ::kill(client, SIGKILL);
  ::waitpid(client, nullptr, 0);
  CHECK(eventually([&] { return running("^sleep 100[23]$") == "0\n"; }));
  CHECK(d.ctl({"exec", name, "--", "echo", "still"}).out == "still\n");  // the sandbox runs on

  // run: its sandbox stops and is removed, as when the command ends.
  pid_t runner =
      spawn_process({OPENSHELL_CTL_BIN, "--bus", d.address(), "run", "--", "/bin/sleep", "1004"},
                    d.dir().path() + "/run.out");
  REQUIRE(eventually([&] { return running("^/bin/sleep 1004$") == "1\n"; }));
  ::kill(runner, SIGKILL);
  ::waitpid(runner, nullptr, 0);
  CHECK(eventually([&] { return running("^/bin/sleep 1004$") == "0\n"; }));
  CHECK(eventually([&] {
    return nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out).size() == 1;
  }));
}

TEST_CASE("openshellctl run: a run whose daemon died goes once its command ends") {
  Daemon d;
  // The command waits (boundedly) for a file the test drops into its workspace.
  const pid_t caller = spawn_process(
      {OPENSHELL_CTL_BIN, "--bus", d.address(), "run", "--", "/bin/sh", "-c",
       "for i in $(seq 600); do [ -e /sandbox/go ] && exit 0; sleep 0.1; done; exit 1"},
      d.dir().path() + "/caller.log");
  auto listed = [&] { return nlohmann::json::parse(d.ctl({"--json", "sandbox", "list"}).out); };
  REQUIRE(eventually([&] { return listed().size() == 1; }));
  d.stop(SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(caller, &status, 0) == caller);
  CHECK(WEXITSTATUS(status) == 1);  // its call went with the daemon
  d.start();
  auto rows = listed();
  REQUIRE(rows.size() == 1);
  const std::string name = rows[0]["name"];
  CHECK(rows[0]["phase"] == "running");  // the command still runs: it is not cut short
  const std::string workspace = d.dir().path() + "/state/workspaces/" + name;
  REQUIRE(path_exists(workspace));
  d.dir().write("state/workspaces/" + name + "/go", "");
  // Nobody is left to want its status: the daemon removes it when it ends.
  CHECK(eventually([&] { return listed().empty(); }));
  CHECK(!path_exists(workspace));
  CHECK(!path_exists(d.dir().path() + "/state/sandboxes/" + name + ".json"));
  CHECK(read_text(d.dir().path() + "/daemon.log").find("removed " + name) != std::string::npos);
}

// Issue 13.13: exec and terminal sessions are Process Activity events of their own, and they
// do not pass for the main process's end.
TEST_CASE("openshellctl logs: exec and tty sessions are Process Activity events") {
  Daemon d;
  const std::string name = d.create("sessions");
  CHECK(d.ctl({"exec", name, "--", "/bin/sh", "-c", "exit 4"}).exit_code == 4);
  const std::string ctl = std::string(OPENSHELL_CTL_BIN) + " --bus " + d.address();
  CHECK(run_process({"/bin/sh", "-c", "printf 'exit 6\\n' | " + ctl + " exec --tty " + name +
                                          " -- /bin/sh"})
            .exit_code == 6);
  auto logged = d.ctl({"--json", "logs", name, "--class", "process"});
  REQUIRE(logged.exit_code == 0);
  std::vector<std::string> seen;
  std::istringstream lines(logged.out);
  for (std::string line; std::getline(lines, line);) {
    auto e = nlohmann::json::parse(line);
    const auto& x = e["process"].value("xattributes", nlohmann::json::object());
    seen.push_back(e["activity_name"].get<std::string>() + ":" + x.value("session", "main") +
                   (e.contains("exit_code") ? ":" + std::to_string(e["exit_code"].get<int>()) : ""));
  }
  CHECK(seen == std::vector<std::string>{"Launch:main", "Launch:exec", "Terminate:exec:4",
                                         "Launch:tty", "Terminate:tty:6"});
  // Still running: no exit status from the sessions' ends.
  auto got = nlohmann::json::parse(d.ctl({"--json", "sandbox", "get", name}).out);
  CHECK(got["phase"] == "running");
  CHECK(got["exit_status"].is_null());
}

TEST_CASE("openshellctl logs: a sandbox's events, filtered, across daemon restarts") {
  Daemon d;
  const std::string name = d.create("logs");
  auto denied = d.ctl({"exec", name, "--", "/usr/bin/curl", "-s", "-m", "5", "-w",
                       " %{http_code}", "http://198.51.100.7/secret"});
  CHECK(denied.out.find(" 403") != std::string::npos);

  auto blocked = d.ctl({"--json", "logs", name, "--denied"});
  REQUIRE(blocked.exit_code == 0);
  size_t count = 0;
  std::istringstream lines(blocked.out);
  for (std::string line; std::getline(lines, line); ++count) {
    auto e = nlohmann::json::parse(line);
    CHECK(e["disposition"] == "Blocked");
  }
  CHECK(count >= 1);
  CHECK(blocked.out.find("198.51.100.7") != std::string::npos);

  auto config = d.ctl({"--json", "logs", name, "--class", "config"});
  CHECK(config.out.find("\"class_uid\":5019") != std::string::npos);
  CHECK(config.out.find("\"class_uid\":4001") == std::string::npos);
  auto one = d.ctl({"logs", name, "-n", "1"});
  CHECK(std::count(one.out.begin(), one.out.end(), '\n') == 1);
  auto human = d.ctl({"logs", name, "--denied"});
  CHECK(human.out.find("[Blocked]") != std::string::npos);
  CHECK(d.ctl({"logs", name, "--since", "1h"}).out.find("198.51.100.7") != std::string::npos);

  d.stop(SIGKILL);
  d.start();
  CHECK(d.ctl({"--json", "logs", name, "--denied"}).out.find("198.51.100.7") !=
        std::string::npos);
  CHECK(d.ctl({"logs", name, "--class", "bogus"}).exit_code == 2);
  CHECK(d.ctl({"logs", name, "--since", "yesterday"}).exit_code == 2);
  CHECK(d.ctl({"logs", "no-such"}).exit_code == 1);
}

TEST_CASE("openshelld: stop and start keep the sandbox and its workspace") {
  Daemon d;
  const std::string name = d.create("ss");
  REQUIRE(d.ctl({"exec", name, "--", "/bin/sh", "-c", "echo before > /sandbox/f"}).exit_code == 0);
  CHECK(d.ctl({"sandbox", "stop", name}).exit_code == 0);
  auto stopped = nlohmann::json::parse(d.ctl({"--json", "sandbox", "get", name}).out);
  CHECK(stopped["phase"] == "stopped");
  CHECK(stopped["reason"] == "stopped on request");
  auto refused = d.ctl({"exec", name, "--", "true"});
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("is stopped") != std::string::npos);

  CHECK(d.ctl({"sandbox", "start", name}).exit_code == 0);
  CHECK(nlohmann::json::parse(d.ctl({"--json", "sandbox", "get", name}).out)["phase"] ==
        "running");
  CHECK(d.ctl({"exec", name, "--", "cat", "/sandbox/f"}).out == "before\n");
  // Issue 13.13: starting a running sandbox, stopping a stopped one: nothing to do, exit 0, a
  // note, and nothing changes.
  auto again = d.ctl({"sandbox", "start", name});
  CHECK(again.exit_code == 0);
  CHECK(again.out == name + " is running already\n");
  CHECK(d.ctl({"sandbox", "stop", name}).out == "stopped " + name + "\n");
  auto before = nlohmann::json::parse(d.ctl({"--json", "sandbox", "get", name}).out);
  auto stop_again = d.ctl({"--json", "sandbox", "stop", name});
  CHECK(stop_again.exit_code == 0);
  CHECK(nlohmann::json::parse(stop_again.out) ==
        nlohmann::json::parse("[{\"name\":\"" + name + "\",\"done\":\"\",\"note\":\"" + name +
                              " is stopped already\"}]"));
  CHECK(nlohmann::json::parse(d.ctl({"--json", "sandbox", "get", name}).out) == before);
}

// A delete answers once the supervisor has stopped, which an agent that ignores SIGTERM puts
// off for the supervisor's 10 s grace: the daemon serves every other call meanwhile.
TEST_CASE("openshelld: a sandbox slow to stop holds up nobody else") {
  Daemon d;
  const std::string other = d.create("other");
  const std::string slow = unique_name("slow");
  d.delete_at_end(slow);
  REQUIRE(d.ctl({"sandbox", "create", slow, "--", "/bin/sh", "-c",
                 "trap '' TERM; while :; do sleep 1; done"})
              .exit_code == 0);
  pid_t deleting =
      spawn_process({OPENSHELL_CTL_BIN, "--bus", d.address(), "sandbox", "delete", slow},
                    d.dir().path() + "/delete.out");
  // The daemon has taken the delete (and is waiting for the supervisor) when exec says so.
  REQUIRE(eventually([&] {
    return d.ctl({"exec", slow, "--", "true"}).err.find("is stopping") != std::string::npos;
  }));
  CHECK(d.ctl({"exec", other, "--", "echo", "served"}).out == "served\n");
  auto start = d.ctl({"sandbox", "start", slow});
  CHECK(start.exit_code == 1);
  CHECK(start.err.find("is stopping") != std::string::npos);
  pid_t again = spawn_process({OPENSHELL_CTL_BIN, "--bus", d.address(), "sandbox", "delete", slow},
                              d.dir().path() + "/delete-again.out");
  int status = -1;
  CHECK(::waitpid(deleting, &status, WNOHANG) == 0);  // all that while, the first delete waited

  REQUIRE(::waitpid(deleting, &status, 0) == deleting);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  REQUIRE(::waitpid(again, &status, 0) == again);  // the second joined the first
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(d.ctl({"sandbox", "get", slow}).exit_code != 0);
  CHECK(d.ctl({"exec", other, "--", "echo", "still"}).out == "still\n");
}

// A create answers once the supervisor is up; one slow to come up (here a wrapper that waits
// 3 s before it runs the supervisor) holds up nobody else, and its sandbox reads as creating.
// A delete meanwhile waits for the start, then deletes (issue 14: it was refused as busy).
TEST_CASE("openshelld: a sandbox slow to start holds up nobody else") {
  TempDir bin;
  const std::string wrapper =
      bin.write("slow-supervisor", "#!/bin/sh\nsleep 3\nexec " + supervisor_bin() + " \"$@\"\n");
  REQUIRE(::chmod(wrapper.c_str(), 0755) == 0);
  REQUIRE(::chmod(bin.path().c_str(), 0755) == 0);
  Daemon d(false, "", wrapper);
  const std::string slow = unique_name("slowstart"), doomed = unique_name("doomed");
  d.delete_at_end(slow);
  d.delete_at_end(doomed);
  pid_t creating =
      spawn_process({OPENSHELL_CTL_BIN, "--bus", d.address(), "sandbox", "create", slow},
                    d.dir().path() + "/create.out");
  pid_t creating_doomed =
      spawn_process({OPENSHELL_CTL_BIN, "--bus", d.address(), "sandbox", "create", doomed},
                    d.dir().path() + "/create-doomed.out");
  REQUIRE(eventually([&] {
    auto got = d.ctl({"--json", "sandbox", "get", slow});
    auto other = d.ctl({"--json", "sandbox", "get", doomed});
    return got.exit_code == 0 && nlohmann::json::parse(got.out)["phase"] == "creating" &&
           other.exit_code == 0 && nlohmann::json::parse(other.out)["phase"] == "creating";
  }));
  CHECK(d.ctl({"status"}).exit_code == 0);
  auto again = d.ctl({"sandbox", "create", slow});
  CHECK(again.exit_code != 0);
  CHECK(again.err.find("is taken") != std::string::npos);
  pid_t deleting = spawn_process({OPENSHELL_CTL_BIN, "--bus", d.address(), "sandbox", "delete",
                                  doomed},
                                 d.dir().path() + "/delete.out");
  int status = -1;
  CHECK(::waitpid(creating, &status, WNOHANG) == 0);  // all that while, the creates waited
  CHECK(::waitpid(creating_doomed, &status, WNOHANG) == 0);

  REQUIRE(::waitpid(creating, &status, 0) == creating);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(nlohmann::json::parse(d.ctl({"--json", "sandbox", "get", slow}).out)["phase"] == "running");
  CHECK(d.ctl({"exec", slow, "--", "echo", "up"}).out == "up\n");
  CHECK(d.ctl({"sandbox", "delete", slow}).exit_code == 0);
  // The doomed one's create answered (it did start), then the delete that waited for it.
  REQUIRE(::waitpid(creating_doomed, &status, 0) == creating_doomed);
  CHECK(WEXITSTATUS(status) == 0);
  REQUIRE(::waitpid(deleting, &status, 0) == deleting);
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(d.ctl({"sandbox", "get", doomed}).exit_code != 0);
}

TEST_CASE("openshelld: tells systemd it is ready, and when a reload runs") {
  Daemon d(/*notify=*/true);
  CHECK(eventually([&] { return d.notifications().find("READY=1") != std::string::npos; }));
  CHECK(d.notifications().find("STATUS=serving") != std::string::npos);
  REQUIRE(d.ctl({"policy", "reload"}).exit_code == 0);
  CHECK(eventually([&] {
    const std::string all = d.notifications();
    const auto reloading = all.find("RELOADING=1");
    return reloading != std::string::npos && all.find("MONOTONIC_USEC=", reloading) != std::string::npos &&
           all.find("READY=1", reloading) != std::string::npos;
  }));
}

// Issue 14: SandboxChanged and PolicyGenerationChanged, on every change, to watchers only, each
// only for the sandboxes it may see; `sandbox list --watch` prints them as they come.
TEST_CASE("openshelld: sandbox and policy signals reach watchers, each its own") {
  OpenshellGroup group;
  TestUser member("g");
  member.join("openshell");
  Daemon d;
  const std::string watched = d.dir().path() + "/watch.out";
  const pid_t root_watch = spawn_process(
      {OPENSHELL_CTL_BIN, "--bus", d.address(), "--json", "sandbox", "list", "--watch"}, watched);
  // The member's watcher, as the member.
  const std::string member_out = d.dir().path() + "/member-watch.out";
  const pid_t member_watch = ::fork();
  REQUIRE(member_watch >= 0);
  if (member_watch == 0) {
    const int o = ::open(member_out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const gid_t groups[1] = {group.gid()};
    if (o < 0 || ::dup2(o, 1) < 0 || ::setgroups(1, groups) != 0 ||
        ::setresgid(member.uid(), member.uid(), member.uid()) != 0 ||
        ::setresuid(member.uid(), member.uid(), member.uid()) != 0)
      ::_exit(99);
    ::execl(OPENSHELL_CTL_BIN, OPENSHELL_CTL_BIN, "--bus", d.address().c_str(), "--json",
            "sandbox", "list", "--watch", static_cast<char*>(nullptr));
    ::_exit(97);
  }
  // Each prints its (empty) list once it watches.
  REQUIRE(eventually([&] { return read_text(watched).find("[]") != std::string::npos; }));
  REQUIRE(eventually([&] { return read_text(member_out).find("[]") != std::string::npos; }));

  const std::string name = unique_name("signals");
  d.delete_at_end(name);
  REQUIRE(d.ctl({"sandbox", "create", name}).exit_code == 0);
  REQUIRE(d.ctl({"sandbox", "stop", name}).exit_code == 0);
  REQUIRE(d.ctl({"sandbox", "start", name}).exit_code == 0);
  const std::string policy = d.dir().write(
      "net.toml", "version = 1\n[network_policies.x]\n"
                  "endpoints = [{ host = \"example.com\", port = 443 }]\n");
  REQUIRE(d.ctl({"policy", "set", name, policy}).exit_code == 0);
  REQUIRE(d.ctl({"sandbox", "delete", name}).exit_code == 0);

  // Every change, in order: the lines after the list.
  struct Seen {
    std::string signal, phase, reason;
    uint64_t revision = 0;
  };
  auto seen = [&] {
    std::vector<Seen> out;
    std::istringstream in(read_text(watched));
    std::string line;
    std::getline(in, line);  // the list
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object() || j.value("name", "") != name) continue;
      out.push_back({j.value("signal", ""), j.value("phase", ""), j.value("reason", ""),
                     j.value("revision", uint64_t{0})});
    }
    return out;
  };
  REQUIRE(eventually([&] {
    auto s = seen();
    return !s.empty() && s.back().phase == "removed";
  }));
  const auto s = seen();
  std::vector<std::string> phases;
  for (const auto& e : s)
    phases.push_back(e.signal == "PolicyGenerationChanged" ? "revision " + std::to_string(e.revision)
                                                           : e.phase);
  CHECK(phases == std::vector<std::string>{"creating", "running", "stopped", "creating", "running",
                                           "revision 2", "removed"});
  CHECK(s[2].reason == "stopped on request");

  // A run's sandbox too, from its start to its removal.
  REQUIRE(d.ctl({"run", "--", "/bin/true"}).exit_code == 0);
  auto removals = [&] {
    const std::string text = read_text(watched);
    size_t n = 0;
    for (size_t at = 0; (at = text.find("\"phase\":\"removed\"", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  REQUIRE(eventually([&] { return removals() == 2; }));
  CHECK(read_text(watched).find("{\"name\":\"run-") != std::string::npos);

  // The member saw none of root's sandboxes; its own it sees.
  const std::string mine = unique_name("mine");
  d.delete_at_end(mine);
  REQUIRE(ctl_as(d, member.uid(), {group.gid()}, {"sandbox", "create", mine}).exit_code == 0);
  REQUIRE(eventually([&] {
    return read_text(member_out).find("\"name\":\"" + mine + "\",\"phase\":\"running\"") !=
           std::string::npos;
  }));
  CHECK(read_text(member_out).find(name) == std::string::npos);
  CHECK(read_text(member_out).find("run-") == std::string::npos);
  CHECK(read_text(watched).find(mine) != std::string::npos);  // root sees everyone's

  // A watcher ends when the daemon does.
  d.stop(SIGTERM);
  int status = 0;
  REQUIRE(::waitpid(root_watch, &status, 0) == root_watch);
  CHECK(WEXITSTATUS(status) == 1);
  REQUIRE(::waitpid(member_watch, &status, 0) == member_watch);
  CHECK(WEXITSTATUS(status) == 1);
  d.start();
}

// Issue 15.1: a daemon sandbox's commands (main and exec) trust its CA; the CA's key is in no
// file of the daemon's: state, runtime, logs.
TEST_CASE("openshelld: a sandbox's CA is trusted inside and its key is written nowhere") {
  Daemon d;
  const std::string name = d.create("tls");
  auto env = d.ctl({"exec", name, "--", "/bin/sh", "-c",
                    "echo $SSL_CERT_FILE; head -1 /etc/openshell-tls/openshell-ca.pem"});
  REQUIRE(env.exit_code == 0);
  CHECK(env.out == "/etc/openshell-tls/ca-bundle.pem\n-----BEGIN CERTIFICATE-----\n");
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(d.dir().path())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const std::string text = read_text(entry.path().string());
    INFO(entry.path().string());
    CHECK(text.find("PRIVATE KEY") == std::string::npos);
  }
  CHECK(files > 3);  // records, revisions, events: something was looked at
}
