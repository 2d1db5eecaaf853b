// The manager's lifecycle against a fake driver (fake_driver.hpp): no root, no namespaces, no
// supervisor binary; the status channel, the control socket and the pidfds are real.
#include "openshelld/manager.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <fstream>

#include "fake_driver.hpp"

using namespace openshell;
using namespace openshell::daemon;
using openshell::daemon::testing::FakeDriver;
using openshell::daemon::testing::FakeWorld;

namespace {

struct Fixture {
  std::string dir;
  sd_event* event = nullptr;
  std::shared_ptr<FakeWorld> world = std::make_shared<FakeWorld>();
  FakeDriver* driver = nullptr;
  std::unique_ptr<Manager> manager;
  std::vector<std::string> changes;  // "name phase" and "name revision N", in order

  Fixture() {
    char tmpl[] = "/tmp/osh-manager-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    std::filesystem::create_directories(dir + "/policies");
    std::ofstream(dir + "/policies/default.toml") << "version = 1\n";
    REQUIRE(sd_event_new(&event) >= 0);
    REQUIRE(restart().ok());
  }
  ~Fixture() {
    manager.reset();
    sd_event_unref(event);
    world.reset();  // the fake supervisors are killed and reaped
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  // A new manager over the same state (a restarted daemon), with a new driver.
  Result<std::vector<std::string>> restart() {
    manager.reset();
    Config config;
    config.state_dir = dir + "/state";
    config.policy_dir = dir + "/policies";
    config.runtime_dir = dir + "/run";
    config.log_dir = dir + "/log";
    config.supervisor = "/fake/openshell-supervisor";
    config.default_routes = {"d"};
    auto fake = std::make_unique<FakeDriver>(world);
    driver = fake.get();
    manager = std::make_unique<Manager>(config, event, std::move(fake));
    manager->set_listener(
        {.changed =
             [this](const SandboxRecord& r) {
               changes.push_back(r.name + " " + std::string(to_string(r.phase)));
             },
         .removed = [this](const SandboxRecord& r) { changes.push_back(r.name + " removed"); },
         .revised =
             [this](const SandboxRecord& r) {
               changes.push_back(r.name + " revision " + std::to_string(r.revision));
             }});
    return manager->start();
  }
  // Runs the loop until `done` (bounded: 2000 turns of at most 10 ms).
  template <typename F>
  bool until(F done) {
    for (int i = 0; i < 2000 && !done(); ++i) REQUIRE(sd_event_run(event, 10000) >= 0);
    return done();
  }
  Result<SandboxRecord> create(const std::string& name, std::vector<std::string> command = {}) {
    std::optional<Result<SandboxRecord>> got;
    manager->create(name, "", std::move(command), ::getuid(), {},
                    [&](Result<SandboxRecord> r) { got = std::move(r); });
    REQUIRE(until([&] { return got.has_value(); }));
    return *got;
  }
  Status finish(void (Manager::*op)(const std::string&, std::function<void(Status)>),
                const std::string& name) {
    std::optional<Status> got;
    (manager.get()->*op)(name, [&](Status st) { got = st; });
    REQUIRE(until([&] { return got.has_value(); }));
    return *got;
  }
  Phase phase(const std::string& name) { return manager->get(name).value().phase; }
};

}  // namespace

TEST_CASE("manager: create answers once the supervisor launched; records and tells") {
  Fixture f;
  auto created = f.create("one");
  REQUIRE(created.ok());
  CHECK(created->phase == Phase::kRunning);
  CHECK(created->supervisor_pid == f.world->started.at("one"));
  CHECK(f.changes == std::vector<std::string>{"one creating", "one running"});
  CHECK(std::filesystem::exists(f.dir + "/state/sandboxes/one.json"));
  CHECK(f.manager->list().size() == 1);
  // The one check of a name from outside: nothing made for a bad or a taken one.
  CHECK(f.create("../x").error().code == std::errc::invalid_argument);
  CHECK(f.create("one").error().code == std::errc::file_exists);
  CHECK_FALSE(f.manager->get("nope").ok());
  CHECK(f.manager->get("nope").error().message().find("no sandbox nope") != std::string::npos);
}

TEST_CASE("manager: a supervisor that ends before launching fails the create, with why") {
  Fixture f;
  auto failed = f.create("bad", {"fail"});
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().message().find("fake supervisor gave up") != std::string::npos);
  CHECK(failed.error().message().find("the fake log of bad") != std::string::npos);
  CHECK(f.phase("bad") == Phase::kFailed);
  CHECK(f.manager->get("bad")->exit_code == 125);
  auto missing = f.create("missing", {"missing"});
  REQUIRE_FALSE(missing.ok());
  CHECK(f.manager->get("missing")->exit_code == 127);
  // A failed sandbox is removed like any other.
  CHECK(f.finish(&Manager::remove, "bad").ok());
  CHECK_FALSE(f.manager->get("bad").ok());
  CHECK(f.changes.back() == "bad removed");
}

TEST_CASE("manager: a crash is seen at once, through the pidfd") {
  Fixture f;
  REQUIRE(f.create("crashy").ok());
  REQUIRE(::kill(f.world->started.at("crashy"), SIGKILL) == 0);
  REQUIRE(f.until([&] { return f.phase("crashy") == Phase::kStopped; }));
  CHECK(f.manager->get("crashy")->reason == "the supervisor is gone");
  CHECK(f.manager->get("crashy")->supervisor_pid == -1);
  CHECK(f.changes.back() == "crashy stopped");
}

TEST_CASE("manager: stop, start again, and stop of a stopped one") {
  Fixture f;
  REQUIRE(f.create("cycle").ok());
  const int first = f.world->started.at("cycle");
  CHECK(f.finish(&Manager::stop, "cycle").ok());
  CHECK(f.phase("cycle") == Phase::kStopped);
  CHECK(f.manager->get("cycle")->reason == "stopped on request");
  CHECK(f.finish(&Manager::stop, "cycle").ok());  // nothing to do
  std::optional<Result<bool>> started;
  f.manager->start("cycle", [&](Result<bool> r) { started = r; });
  REQUIRE(f.until([&] { return started.has_value(); }));
  REQUIRE(started->ok());
  CHECK(**started);
  CHECK(f.phase("cycle") == Phase::kRunning);
  CHECK(f.world->started.at("cycle") != first);
  started.reset();
  f.manager->start("cycle", [&](Result<bool> r) { started = r; });
  REQUIRE(f.until([&] { return started.has_value(); }));
  CHECK_FALSE(started->value());  // running already
}

TEST_CASE("manager: a restarted daemon adopts what still runs, and marks what does not") {
  Fixture f;
  REQUIRE(f.create("stays").ok());
  REQUIRE(f.create("goes").ok());
  const int goes = f.world->started.at("goes");
  f.manager.reset();  // the daemon goes; its supervisors do not
  REQUIRE(::kill(goes, SIGKILL) == 0);
  REQUIRE(::waitpid(goes, nullptr, 0) == goes);
  auto problems = f.restart();
  REQUIRE(problems.ok());
  CHECK(problems->empty());
  CHECK(f.phase("stays") == Phase::kRunning);
  CHECK(f.phase("goes") == Phase::kStopped);
  // The adopted one is watched as before.
  REQUIRE(::kill(f.world->started.at("stays"), SIGKILL) == 0);
  REQUIRE(f.until([&] { return f.phase("stays") == Phase::kStopped; }));
}

TEST_CASE("manager: a delete while starting waits for the start, then deletes") {
  Fixture f;
  f.driver->hold("slow");
  std::optional<Result<SandboxRecord>> created;
  f.manager->create("slow", "", {}, ::getuid(), {}, [&](Result<SandboxRecord> r) { created = r; });
  REQUIRE(f.until([&] { return f.world->started.contains("slow"); }));
  CHECK(f.phase("slow") == Phase::kCreating);
  std::optional<Status> deleted;
  f.manager->remove("slow", [&](Status st) { deleted = st; });
  // Exec and start are refused meanwhile; the delete waits.
  auto exec = f.manager->exec("slow", {"true"}, {}, "", {}, [](const ExecOutcome&) {});
  CHECK(exec.error().code == std::errc::device_or_resource_busy);
  for (int i = 0; i < 5; ++i) REQUIRE(sd_event_run(f.event, 1000) >= 0);
  CHECK_FALSE(created.has_value());
  CHECK_FALSE(deleted.has_value());
  f.driver->release("slow");
  REQUIRE(f.until([&] { return deleted.has_value(); }));
  REQUIRE(created.has_value());
  CHECK(created->ok());
  CHECK(deleted->ok());
  CHECK_FALSE(f.manager->get("slow").ok());
  CHECK(f.changes == std::vector<std::string>{"slow creating", "slow running", "slow removed"});
}

TEST_CASE("manager: a run answers with its command's status, and leaves nothing") {
  Fixture f;
  std::vector<UniqueFd> stdio;
  for (int i = 0; i < 3; ++i) stdio.emplace_back(::open("/dev/null", O_RDWR | O_CLOEXEC));
  std::optional<ExecOutcome> outcome;
  auto ticket = f.manager->run("", "", "", {"exit", "7"}, {}, std::move(stdio), ::getuid(), {},
                               [&](const ExecOutcome& o) { outcome = o; });
  REQUIRE(ticket.ok());
  REQUIRE(f.until([&] { return outcome.has_value(); }));
  CHECK(outcome->ok);
  CHECK(outcome->exit_code == 7);
  CHECK(f.manager->list().empty());
  CHECK(std::filesystem::is_empty(f.dir + "/state/sandboxes"));
}

TEST_CASE("manager: a run whose caller leaves is shut down and removed") {
  Fixture f;
  std::vector<UniqueFd> stdio;
  for (int i = 0; i < 3; ++i) stdio.emplace_back(::open("/dev/null", O_RDWR | O_CLOEXEC));
  std::optional<ExecOutcome> outcome;
  auto ticket = f.manager->run("", "", "", {"sleep"}, {}, std::move(stdio), ::getuid(), {},
                               [&](const ExecOutcome& o) { outcome = o; });
  REQUIRE(ticket.ok());
  REQUIRE(f.until([&] {
    auto all = f.manager->list();
    return all.size() == 1 && all.front().phase == Phase::kRunning;
  }));
  f.manager->abandon(*ticket);
  REQUIRE(f.until([&] { return outcome.has_value(); }));
  CHECK(outcome->exit_code == 143);  // its shutdown's
  CHECK(f.manager->list().empty());
}

TEST_CASE("manager: policy set on a running sandbox: only network_policies, each a revision") {
  Fixture f;
  REQUIRE(f.create("pol").ok());
  std::optional<Result<uint64_t>> revised;
  auto done = [&](Result<uint64_t> r) { revised = r; };
  f.manager->set_policy("pol",
                        "version = 1\n[network_policies.x]\n"
                        "endpoints = [{ host = \"example.com\", port = 443 }]\n",
                        "net.toml", done);
  REQUIRE(f.until([&] { return revised.has_value(); }));
  REQUIRE(revised->ok());
  CHECK(**revised == 2);
  CHECK(f.changes.back() == "pol revision 2");
  // A static change is refused while it runs, naming the key.
  revised.reset();
  f.manager->set_policy("pol", "version = 1\n[resources]\nmemory_max = \"1G\"\n", "mem.toml", done);
  REQUIRE(f.until([&] { return revised.has_value(); }));
  REQUIRE_FALSE(revised->ok());
  CHECK(revised->error().code == std::errc::operation_not_supported);
  CHECK(revised->error().message().find("resources.memory_max") != std::string::npos);
  CHECK(f.manager->get("pol")->revision == 2);
}

namespace {

// What the fake supervisor of `name` received, a JSON object per message, in order.
std::vector<nlohmann::json> services_received(const Fixture& f, const std::string& name) {
  std::vector<nlohmann::json> out;
  std::ifstream in(f.dir + "/log/sandboxes/" + name + "/events.jsonl.services");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<std::string> route_names(const nlohmann::json& services) {
  std::vector<std::string> out;
  for (const auto& r : services["routes"]) out.push_back(r["name"].get<std::string>());
  return out;
}

inference::Route test_route(const std::string& name) {
  inference::Route r;
  r.name = name;
  r.base_url = "http://127.0.0.1:9";
  r.provider = "oai";
  r.model = name + "-model";
  return r;
}

}  // namespace

TEST_CASE("manager: a sandbox's providers and routes, at start and on every change") {
  Fixture f;
  REQUIRE(f.manager->set_provider({"oai", providers::Type::kOpenAi, {{"OPENAI_API_KEY", "sk-1"}}},
                                  true)
              .ok());
  REQUIRE(f.manager->set_provider({"mine", providers::Type::kGeneric, {{"API_TOKEN", "s3cret"}}},
                                  true)
              .ok());
  CHECK(f.manager->set_provider({"mine", providers::Type::kGeneric, {{"X", "y"}}}, true).error().code ==
        std::errc::file_exists);
  for (const auto* r : {"r1", "r2", "d"}) REQUIRE(f.manager->set_route(test_route(r)).ok());

  // Its own routes (create --inference) first, and its attached providers.
  std::optional<Result<SandboxRecord>> got;
  SandboxOptions own;
  own.routes = {"r1"};
  own.providers = {"mine"};
  f.manager->create("a", "", {}, 0, own, [&](Result<SandboxRecord> r) { got = std::move(r); });
  REQUIRE(f.until([&] { return got.has_value(); }));
  REQUIRE(got->ok());
  auto a = services_received(f, "a");
  REQUIRE(a.size() == 1);
  CHECK(route_names(a[0]) == std::vector<std::string>{"r1"});
  CHECK(a[0]["attached"][0]["name"] == "mine");
  CHECK(a[0]["routing"][0]["name"] == "oai");  // the route's key, not the agent's

  // Else its policy's; else the daemon's default_routes.
  got.reset();
  f.manager->create_with_text("b", "version = 1\n[inference]\nroutes = [\"r2\"]\n"
                                   "privacy = \"local-only\"\n",
                              "b.toml", {}, 0, {}, [&](Result<SandboxRecord> r) { got = std::move(r); });
  REQUIRE(f.until([&] { return got.has_value(); }));
  REQUIRE(got->ok());
  CHECK(route_names(services_received(f, "b")[0]) == std::vector<std::string>{"r2"});
  CHECK(services_received(f, "b")[0]["privacy"] == "local-only");
  REQUIRE(f.create("c").ok());
  CHECK(route_names(services_received(f, "c")[0]) == std::vector<std::string>{"d"});

  // A member attaches nothing and gets only the operator's default routes.
  got.reset();
  f.manager->create("m", "", {}, 4242, own, [&](Result<SandboxRecord> r) { got = std::move(r); });
  REQUIRE(f.until([&] { return got.has_value(); }));
  REQUIRE_FALSE(got->ok());
  CHECK(got->error().code == std::errc::operation_not_permitted);
  // An unknown provider or route is refused at create.
  SandboxOptions unknown;
  unknown.providers = {"nope"};
  got.reset();
  f.manager->create("u", "", {}, 0, unknown, [&](Result<SandboxRecord> r) { got = std::move(r); });
  REQUIRE(f.until([&] { return got.has_value(); }));
  CHECK(got->error().message().find("no provider nope") != std::string::npos);

  // A provider's new value reaches every running sandbox that holds it, at once.
  REQUIRE(f.manager->set_provider({"mine", providers::Type::kGeneric, {{"API_TOKEN", "n3w"}}},
                                  false)
              .ok());
  REQUIRE(f.until([&] { return services_received(f, "a").size() == 2; }));
  CHECK(services_received(f, "a")[1]["attached"][0]["credentials"]["API_TOKEN"] == "n3w");
  // So does a route's change; and a deleted route is gone from them.
  REQUIRE(f.manager->delete_route("d").ok());
  REQUIRE(f.until([&] { return services_received(f, "c").size() >= 3; }));
  CHECK(services_received(f, "c").back()["routes"].empty());
  // What the bus shows of a provider: never a value.
  auto shown = f.manager->provider_info("mine");
  REQUIRE(shown.ok());
  CHECK(shown->dump().find("n3w") == std::string::npos);
  CHECK((*shown)["sandboxes"] == nlohmann::json::array({"a"}));
  CHECK(f.manager->delete_provider("mine").ok());
  CHECK(f.manager->provider_info("mine").error().code == std::errc::no_such_file_or_directory);
}
