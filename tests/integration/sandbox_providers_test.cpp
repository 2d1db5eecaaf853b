// Credential providers and the privacy router end to end (issue 16): a private openshelld,
// providers and routes made with openshellctl, sandboxes whose agents see placeholders, fake
// upstreams in network namespaces of their own and fake model backends on loopback.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/daemon.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/upstream.hpp"

using namespace openshell::testing;

namespace {

const std::string kCurl = "/usr/bin/curl";

std::string rule(const std::string& name, const std::string& host, int port,
                 const std::string& fields) {
  return "[network_policies." + name + "]\n[[network_policies." + name + ".endpoints]]\nhost = \"" +
         host + "\"\nport = " + std::to_string(port) + "\n" + fields + "\n";
}

// openshellctl with one variable set in its environment (where a provider's value comes from).
Outcome ctl_with(Daemon& d, const std::string& var, const std::string& value,
                 std::vector<std::string> args) {
  ::setenv(var.c_str(), value.c_str(), 1);
  auto r = d.ctl(std::move(args));
  ::unsetenv(var.c_str());
  return r;
}

// A fake model backend on loopback (tests/helpers/tls_upstream openai|fail), killed at the end.
class Backend {
 public:
  Backend(uint16_t port, const std::vector<std::string>& mode) : port_(port) {
    std::vector<std::string> argv = {helper("tls_upstream"), "127.0.0.1", std::to_string(port)};
    argv.insert(argv.end(), mode.begin(), mode.end());
    argv.emplace_back("120");
    pid_ = spawn_process(argv, log_);
    REQUIRE(eventually([&] { return output().find("listening") != std::string::npos; }));
  }
  ~Backend() { stop(); }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  [[nodiscard]] std::string output() const { return read_text(log_); }
  [[nodiscard]] size_t requests() const {
    size_t n = 0;
    std::istringstream in(output());
    for (std::string line; std::getline(in, line);) n += line.rfind("request ", 0) == 0;
    return n;
  }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  TempDir dir_;
  std::string log_ = dir_.path() + "/backend.log";
  uint16_t port_;
  pid_t pid_ = -1;
};

// Ports of this test process's backends, apart from other test processes'.
uint16_t port(int n) { return static_cast<uint16_t>(21000 + (::getpid() % 2000) * 8 + n); }

// The inference events of a sandbox, newest last.
std::vector<nlohmann::json> inference_events(Daemon& d, const std::string& name) {
  auto r = d.ctl({"--json", "logs", name, "--class", "inference", "-n", "100"});
  std::vector<nlohmann::json> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// What a chat call from inside the sandbox got, "STATUS BODY".
Outcome chat(Daemon& d, const std::string& name, const std::string& model,
             const std::string& path = "/v1/chat/completions",
             const std::string& scheme = "https") {
  return d.ctl({"exec", name, "--", kCurl, "-sS", "-m", "20", "-w", " %{http_code}", "-H",
                "Authorization: Bearer dummy", "-H", "Content-Type: application/json", "-d",
                "{\"model\":\"" + model + "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                scheme + "://inference.local" + path});
}

}  // namespace

TEST_CASE("providers: the agent holds placeholders; the secret goes only to its endpoint") {
  Daemon d;
  UpstreamHost bound, other;
  bound.start_tls_upstream(8080, "http", 120);
  other.start_tls_upstream(8080, "http", 120);
  const std::string policy = d.dir().write(
      "p.toml", test_policy("", rule("mine", bound.address(), 8080,
                                     "protocol = \"rest\"\naccess = \"full\"\n"
                                     "credential_binding = \"mine\"\n"
                                     "request_body_credential_rewrite = true") +
                                    rule("other", other.address(), 8080,
                                         "protocol = \"rest\"\naccess = \"full\"")));
  auto made = ctl_with(d, "API_TOKEN", "s3cret",
                       {"provider", "create", "mine", "--type", "generic", "--credential",
                        "API_TOKEN"});
  REQUIRE(made.exit_code == 0);
  // A value is never taken from the command line, and a missing variable is named.
  auto missing = d.ctl({"provider", "create", "nope", "--type", "generic", "--credential", "NOPE"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("environment variable NOPE") != std::string::npos);
  auto shown = d.ctl({"--json", "provider", "get", "mine"});
  REQUIRE(shown.exit_code == 0);
  CHECK(shown.out.find("s3cret") == std::string::npos);
  CHECK(nlohmann::json::parse(shown.out)["keys"] == nlohmann::json::array({"API_TOKEN"}));

  const std::string name = unique_name("cred");
  auto created = d.ctl({"sandbox", "create", name, "--policy-file", policy, "--provider", "mine"});
  INFO(created.out << created.err << read_text(d.dir().path() + "/daemon.log"));
  REQUIRE(created.exit_code == 0);
  d.delete_at_end(name);

  CHECK(d.ctl({"exec", name, "--", "/bin/sh", "-c", "echo $API_TOKEN"}).out ==
        "openshell:resolve:env:API_TOKEN\n");
  const std::string b = "http://" + bound.address() + ":8080";
  const std::string o = "http://" + other.address() + ":8080";
  auto r = d.ctl(
      {"exec", name, "--", "/bin/sh", "-c",
       kCurl + " -sS -m 20 -H \"Authorization: Bearer $API_TOKEN\" " + b + "/bearer; echo; " +
           kCurl + " -sS -m 20 -u \"me:$API_TOKEN\" " + b + "/basic; echo; " + kCurl +
           " -sS -m 20 \"" + b + "/query?key=$API_TOKEN&x=1\"; echo; " + kCurl +
           " -sS -m 20 -H 'Content-Type: application/json' -d \"{\\\"t\\\":\\\"$API_TOKEN\\\"}\" " +
           b + "/body; echo; " + kCurl + " -sS -m 20 -w ' %{http_code}' -H \"Authorization: Bearer $API_TOKEN\" " +
           o + "/elsewhere; echo"});
  INFO(r.out << r.err << bound.server_output() << other.server_output());
  const std::string seen = bound.server_output();
  CHECK(seen.find("GET /bearer host=" + bound.address() + ":8080") != std::string::npos);
  CHECK(seen.find("auth=Bearer s3cret") != std::string::npos);
  CHECK(seen.find("auth=Basic bWU6czNjcmV0") != std::string::npos);  // me:s3cret
  CHECK(seen.find("GET /query?key=s3cret&x=1 ") != std::string::npos);
  CHECK(seen.find("POST /body host=" + bound.address() + ":8080 conn=") != std::string::npos);
  CHECK(seen.find("body=14") != std::string::npos);  // {"t":"s3cret"}: the length fixed
  // Another allowed host: refused, told why, and its upstream saw nothing at all.
  CHECK(r.out.find("credential_endpoint_mismatch") != std::string::npos);
  CHECK(r.out.find(" 403") != std::string::npos);
  CHECK(other.server_output().find("request ") == std::string::npos);
  auto findings = d.ctl({"--json", "logs", name, "--class", "finding"});
  CHECK(findings.out.find("credential_endpoint_mismatch") != std::string::npos);
  CHECK(findings.out.find("API_TOKEN") != std::string::npos);

  // A new value reaches the running sandbox, no restart.
  REQUIRE(ctl_with(d, "API_TOKEN", "n3w-value", {"provider", "update", "mine", "--credential",
                                                 "API_TOKEN"})
              .exit_code == 0);
  REQUIRE(eventually([&] {
    d.ctl({"exec", name, "--", "/bin/sh", "-c",
           kCurl + " -sS -m 20 -H \"Authorization: Bearer $API_TOKEN\" " + b + "/again"});
    return bound.server_output().find("auth=Bearer n3w-value") != std::string::npos;
  }));

  // No secret anywhere but the provider store: runtime, logs, state (events, revisions,
  // records), the daemon's and the supervisor's own logs, and the journal where there is one.
  for (const std::string secret : {"s3cret", "n3w-value"}) {
    INFO(secret);
    auto grep = run_process({"/bin/grep", "-rl", "--exclude-dir=providers", secret,
                             d.dir().path() + "/state", d.dir().path() + "/run",
                             d.dir().path() + "/log", d.dir().path() + "/daemon.log"});
    CHECK(grep.out.empty());
    CHECK(grep.exit_code == 1);  // grep: nothing found (2 would be an error)
    if (path_exists("/run/systemd/journal/socket")) {
      auto journal = run_process({"/bin/journalctl", "-q", "--no-pager", "-g", secret});
      CHECK(journal.out.empty());
    }
  }
  CHECK(read_text(d.dir().path() + "/state/providers/mine.json").find("n3w-value") !=
        std::string::npos);
}

TEST_CASE("inference.local: privacy, model globs, failover, streaming, live route changes") {
  Daemon d;
  const std::string name = unique_name("inf");
  const std::string go = d.dir().path() + "/state/workspaces/" + name + "/go";
  Backend local(port(0), {"openai", "local", go});
  Backend remote(port(1), {"openai", "remote", go});
  Backend claude(port(2), {"openai", "claude", go});
  REQUIRE(ctl_with(d, "OPENAI_API_KEY", "sk-real",
                   {"provider", "create", "oai", "--type", "openai", "--credential",
                    "OPENAI_API_KEY"})
              .exit_code == 0);
  const auto route = [&](const std::string& n, const Backend& b, const std::string& model,
                         const std::string& where, const std::string& cost,
                         std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"inference", "route", "set", n, "--base-url", b.url(),
                                     "--provider", "oai", "--model", model, "--locality", where,
                                     "--cost", cost};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = d.ctl(args);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
  };
  route("local", local, "llama-3", "local", "5");
  route("remote", remote, "gpt-4o", "remote", "1");
  route("claude", claude, "claude-sonnet", "remote", "9", {"--models", "claude-*"});
  const auto policy_with = [&](const std::string& privacy) {
    return d.dir().write("p.toml", test_policy("", "[inference]\nroutes = [\"local\", \"remote\", "
                                                   "\"claude\"]\nprivacy = \"" +
                                                       privacy + "\"\n"));
  };
  auto created =
      d.ctl({"sandbox", "create", name, "--policy-file", policy_with("local-only")});
  INFO(created.err << read_text(d.dir().path() + "/daemon.log"));
  REQUIRE(created.exit_code == 0);
  d.delete_at_end(name);

  // local-only: the local route answers everything, whatever is asked for and cheaper.
  for (const std::string model : {"anything", "gpt-4o", "claude-3"}) {
    auto r = chat(d, name, model);
    INFO(r.out << r.err);
    CHECK(r.out.find("\"backend\":\"local\"") != std::string::npos);
    CHECK(r.out.find(" 200") != std::string::npos);
  }
  CHECK(remote.requests() == 0);
  CHECK(claude.requests() == 0);
  // The backend got the provider's key and the route's model, not the agent's.
  CHECK(local.output().find("auth=Bearer sk-real model=llama-3") != std::string::npos);
  CHECK(local.output().find("dummy") == std::string::npos);
  // Plain http and the models list too; other paths 404; Anthropic calls with no Anthropic
  // route: 400.
  CHECK(chat(d, name, "x", "/v1/chat/completions", "http").out.find("\"backend\":\"local\"") !=
        std::string::npos);
  auto models = d.ctl({"exec", name, "--", kCurl, "-sS", "-m", "20", "https://inference.local/v1/models"});
  CHECK(models.out.find("\"id\":\"llama-3\"") != std::string::npos);
  CHECK(models.out.find("gpt-4o") == std::string::npos);  // local-only lists the local one
  CHECK(chat(d, name, "x", "/v2/other").out.find(" 404") != std::string::npos);
  auto messages = chat(d, name, "claude-3", "/v1/messages");
  CHECK(messages.out.find(" 400") != std::string::npos);
  CHECK(messages.out.find("no_route") != std::string::npos);

  // any (a policy change, applied to the running sandbox): cost decides, and a route whose
  // globs name the model gets its calls.
  REQUIRE(d.ctl({"policy", "set", name, policy_with("any")}).exit_code == 0);
  REQUIRE(eventually([&] { return chat(d, name, "x").out.find("\"backend\":\"remote\"") != std::string::npos; }));
  auto to_claude = chat(d, name, "claude-3-opus");
  INFO(to_claude.out);
  CHECK(to_claude.out.find("\"backend\":\"claude\"") != std::string::npos);
  CHECK(claude.output().find("model=claude-sonnet") != std::string::npos);

  // prefer-local: the local one; when it is down, the remote one, and the event says so.
  REQUIRE(d.ctl({"policy", "set", name, policy_with("prefer-local")}).exit_code == 0);
  REQUIRE(eventually([&] { return chat(d, name, "x").out.find("\"backend\":\"local\"") != std::string::npos; }));
  local.stop();
  auto failed_over = chat(d, name, "x");
  INFO(failed_over.out);
  CHECK(failed_over.out.find("\"backend\":\"remote\"") != std::string::npos);
  auto events = inference_events(d, name);
  REQUIRE_FALSE(events.empty());
  const auto& last = events.back()["unmapped"]["inference"];
  CHECK(last["route"] == "remote");
  CHECK(last["locality"] == "remote");
  CHECK(last["requested_model"] == "x");
  CHECK(last["sent_model"] == "gpt-4o");
  CHECK(last["status"] == 200);
  CHECK(last["input_tokens"] == 5);
  CHECK(last["output_tokens"] == 7);
  REQUIRE(last["failed_over"].size() == 1);
  CHECK(last["failed_over"][0].get<std::string>().rfind("local: ", 0) == 0);

  // A backend that answers 5xx before anything reached the agent gives way too.
  Backend broken(port(3), {"fail"});
  route("local", broken, "llama-3", "local", "5");
  REQUIRE(eventually([&] {
    chat(d, name, "x");
    return broken.requests() > 0;
  }));
  const auto after_5xx = inference_events(d, name).back()["unmapped"]["inference"];
  CHECK(after_5xx["route"] == "remote");
  REQUIRE(after_5xx["failed_over"].size() == 1);
  CHECK(after_5xx["failed_over"][0] == "local: answered 503");

  // A route changed while the sandbox runs: its next call goes by the new route.
  route("remote", remote, "gpt-5", "remote", "1");
  REQUIRE(eventually([&] {
    chat(d, name, "x");
    return remote.output().find("model=gpt-5") != std::string::npos;
  }));

  // Streaming: the agent reads the first event before the backend sends the last (the backend
  // holds it until the agent's go file exists).
  auto streamed = d.ctl(
      {"exec", name, "--", "/bin/sh", "-c",
       kCurl + " -sSN -m 30 -d '{\"model\":\"x\",\"stream\":true}' "
               "https://inference.local/v1/chat/completions | while IFS= read -r line; do "
               "case \"$line\" in data:*) echo \"got $line\";; esac; "
               "case \"$line\" in *first*) echo go > /sandbox/go;; esac; done"});
  INFO(streamed.out << remote.output());
  CHECK(streamed.out.find("got data: {\"backend\":\"remote\",\"delta\":\"first\"}") !=
        std::string::npos);
  CHECK(streamed.out.find("\"delta\":\"last\"") != std::string::npos);
  CHECK(remote.output().find("sse last after go") != std::string::npos);
  CHECK(remote.output().find("sse last without go") == std::string::npos);
  const auto stream_event = inference_events(d, name).back()["unmapped"]["inference"];
  CHECK(stream_event["output_tokens"] == 2);  // from the stream's last event
  CHECK(stream_event.contains("time_to_first_byte_ms"));

  // The key never reached the sandbox's records.
  auto grep = run_process({"/bin/grep", "-rl", "--exclude-dir=providers", "sk-real",
                           d.dir().path() + "/state", d.dir().path() + "/log"});
  CHECK(grep.out.empty());
}
