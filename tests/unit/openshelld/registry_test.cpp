#include "openshelld/registry.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "sys/file_util.hpp"

using namespace openshell;
using namespace openshell::daemon;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/osh-registry-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

SandboxRecord sample(const std::string& name) {
  SandboxRecord r;
  r.name = name;
  r.owner_uid = 1000;
  r.policy = "default";
  r.revision = 2;
  r.command = {"/bin/sleep", "infinity"};
  r.phase = Phase::kRunning;
  r.created_unix_ms = 1795447453004;
  r.supervisor_pid = 4242;
  return r;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

}  // namespace

TEST_CASE("registry: records round-trip through the state directory") {
  TempDir dir;
  Registry registry(dir.path + "/state");
  REQUIRE(registry.init().ok());
  struct stat st {};
  REQUIRE(::stat((dir.path + "/state/sandboxes").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);

  auto a = sample("alpha");
  auto b = sample("beta");
  b.phase = Phase::kStopped;
  b.exit_code = 7;
  b.reason = "agent exited";
  b.pinned = true;
  b.ephemeral = true;  // written without fsync, read back the same
  REQUIRE(registry.save(a).ok());
  REQUIRE(registry.save(b).ok());
  REQUIRE(::stat((dir.path + "/state/sandboxes/alpha.json").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  auto loaded = registry.load_all();
  CHECK(loaded.problems.empty());
  REQUIRE(loaded.records.size() == 2);
  CHECK(loaded.records[0].name == "alpha");
  CHECK(loaded.records[0].command == a.command);
  CHECK(loaded.records[0].phase == Phase::kRunning);
  CHECK_FALSE(loaded.records[0].exit_code.has_value());
  CHECK(loaded.records[1].exit_code == 7);
  CHECK(loaded.records[1].reason == "agent exited");
  CHECK(loaded.records[1].pinned);
  CHECK_FALSE(loaded.records[0].pinned);
  CHECK(loaded.records[1].ephemeral);
  CHECK_FALSE(loaded.records[0].ephemeral);

  REQUIRE(registry.remove("alpha").ok());
  CHECK(registry.load_all().records.size() == 1);
  // No temporary files are left next to the records.
  CHECK(::access((dir.path + "/state/sandboxes/beta.json.tmp." + std::to_string(::getpid()))
                     .c_str(),
                 F_OK) != 0);
}

TEST_CASE("registry: corrupt or foreign records are reported and skipped") {
  TempDir dir;
  Registry registry(dir.path);
  REQUIRE(registry.init().ok());
  REQUIRE(registry.save(sample("good")).ok());
  const std::string sandboxes = dir.path + "/sandboxes/";
  write(sandboxes + "truncated.json", R"({"version":1,"name":"trunc)");
  write(sandboxes + "wrongtype.json", R"({"version":1,"name":7})");
  write(sandboxes + "future.json", R"({"version":99})");
  auto other = to_json(sample("other"));
  write(sandboxes + "mismatch.json", other.dump());  // says it is 'other'
  auto bad_name = to_json(sample("x"));
  bad_name["name"] = "../etc";
  write(sandboxes + "evil.json", bad_name.dump());
  write(sandboxes + "notes.txt", "ignored: not a record");
  write(sandboxes + "huge.json", std::string(70000, ' '));

  auto loaded = registry.load_all();
  REQUIRE(loaded.records.size() == 1);
  CHECK(loaded.records[0].name == "good");
  CHECK(loaded.problems.size() == 6);
}

TEST_CASE("registry: policy revisions are numbered and kept per sandbox") {
  TempDir dir;
  Registry registry(dir.path);
  REQUIRE(registry.init().ok());
  CHECK(registry.revisions("s1").empty());
  REQUIRE(registry.add_revision("s1", "version = 1\n", "created from policy p").value() == 1);
  REQUIRE(registry
              .add_revision("s1", "version = 1\n# two\n", "set from f.toml",
                            sys::Durability::kProcessCrash)
              .value() == 2);
  CHECK(registry.revisions("s1") == std::vector<uint64_t>{1, 2});
  const auto history = registry.history("s1");
  REQUIRE(history.size() == 2);
  CHECK(history[0].number == 1);
  CHECK(history[0].origin == "created from policy p");
  CHECK(history[1].origin == "set from f.toml");
  CHECK(history[1].time_unix_ms >= history[0].time_unix_ms);
  CHECK(history[0].time_unix_ms > 0);
  // A lost note costs the history its origin, not the revision.
  REQUIRE(::unlink((dir.path + "/revisions/s1/1.json").c_str()) == 0);
  CHECK(registry.history("s1").front().origin.empty());
  CHECK(registry.history("s1").size() == 2);
  CHECK(registry.revision("s1", 2).value() == "version = 1\n# two\n");
  CHECK_FALSE(registry.revision("s1", 3).ok());
  REQUIRE(registry.remove("s1").ok());
  CHECK(registry.revisions("s1").empty());
}

TEST_CASE("write_file_atomic replaces content whole and leaves no temporary behind") {
  TempDir dir;
  const std::string path = dir.path + "/f";
  REQUIRE(sys::write_file_atomic(path, "one", 0640).ok());
  REQUIRE(sys::write_file_atomic(path, "two", 0640).ok());
  CHECK(sys::read_file(path).value() == "two");
  REQUIRE(sys::write_file_atomic(path, "three", 0640, sys::Durability::kProcessCrash).ok());
  CHECK(sys::read_file(path).value() == "three");
  CHECK(::access((path + ".tmp." + std::to_string(::getpid())).c_str(), F_OK) != 0);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  // A directory that does not exist: an error, nothing created.
  CHECK_FALSE(sys::write_file_atomic(dir.path + "/missing/f", "x", 0600).ok());
}
