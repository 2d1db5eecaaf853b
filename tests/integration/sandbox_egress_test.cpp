// Egress end to end: an agent in a sandbox, the supervisor's proxy and policy DNS, and upstream
// servers in a network namespace this test creates (tests/support/upstream.hpp).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/events.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/upstream.hpp"

using namespace openshell::testing;

namespace {

const char* kCurl = "/usr/bin/curl";

std::string endpoint_policy(const std::string& binaries, const std::string& host,
                            const std::string& ports) {
  std::string p = test_policy();
  p += "[network_policies.upstream]\n";
  if (!binaries.empty()) p += "binaries = [" + binaries + "]\n";
  p +=
      "[[network_policies.upstream.endpoints]]\nhost = \"" + host + "\"\nports = [" + ports + "]\n";
  return p;
}

struct Sandbox {
  std::string policy_file;
  std::string events_file;
  std::vector<std::string> extra;
  Outcome run(const std::vector<std::string>& cmd) {
    std::vector<std::string> argv = {supervisor_bin(), "run",      "--policy-file",
                                     policy_file,      "--name",   unique_name("egress"),
                                     "--events",       events_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.emplace_back("--");
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return run_process(argv, 120);
  }
};

}  // namespace

TEST_CASE("the explicit proxy passes allowed requests and explains denials") {
  UpstreamHost up;
  up.start(8080, "http");
  up.start(8443, "http");
  up.start(9090, "http");
  TempDir dir;
  Sandbox sb{dir.write("p.toml", endpoint_policy("", "upstream.test", "8080, 8443")),
             dir.path() + "/events.jsonl",
             {"--resolve", "upstream.test=" + up.address()}};
  auto r = sb.run({"/bin/sh", "-c",
                   std::string(kCurl) + " -s -m 10 http://upstream.test:8080/a; echo; " + kCurl +
                       " -s -m 10 http://upstream.test:8443/b; echo; " + kCurl +
                       " -s -m 10 -w ' %{http_code}' http://upstream.test:9090/c; echo; " + kCurl +
                       " -s -m 10 -w ' %{http_code}' http://other.test:8080/d; echo"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<std::string> lines;
  {
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.push_back(line);
  }
  REQUIRE(lines.size() == 4);
  const std::string &a = lines[0], &b = lines[1], &c = lines[2], &d = lines[3];
  CHECK(a.find("upstream ok: GET /a") != std::string::npos);  // ports = [8080, 8443]: both
  CHECK(b.find("upstream ok: GET /b") != std::string::npos);
  CHECK(c.substr(c.size() - 3) == "403");  // a port the rule does not list
  CHECK(c.find("\"reason\":\"port_not_allowed\"") != std::string::npos);
  auto denial = nlohmann::json::parse(d.substr(0, d.size() - 4));
  CHECK(d.substr(d.size() - 3) == "403");
  CHECK(denial["error"] == "policy_denied");
  CHECK(denial["host"] == "other.test");
  CHECK(denial["port"] == 8080);
  CHECK(denial["binary"] == kCurl);
  CHECK(denial.contains("reason"));
  CHECK(denial.contains("policy"));
  // The upstream saw only the allowed requests.
  CHECK(up.server_output().find("/c") == std::string::npos);

  auto events = read_events(sb.events_file);
  int allowed = 0, denied = 0;
  for (const auto& e : events)
    if (e["class_uid"] == 4001) (e["disposition"] == "Allowed" ? allowed : denied)++;
  CHECK(allowed == 2);
  CHECK(denied == 2);
}

TEST_CASE(
    "binaries: curl may, others may not; a child of an allowed binary may; argv counts for "
    "nothing") {
  UpstreamHost up;
  up.start(8080, "http");
  TempDir dir;
  Sandbox sb{
      dir.write("p.toml", endpoint_policy("{ path = \"/usr/bin/curl\" }", "upstream.test", "8080")),
      dir.path() + "/events.jsonl",
      {"--resolve", "upstream.test=" + up.address()}};
  auto curl = sb.run({kCurl, "-s", "-m", "10", "http://upstream.test:8080/curl"});
  CHECK(curl.out.find("upstream ok") != std::string::npos);
  // The probe is not curl: through the proxy it is refused (403 body names its binary).
  auto probe = sb.run({"/bin/bash", "-c",
                       "exec -a /usr/bin/curl " + helper("connect_tunnel") +
                           " 10.200.0.1 3128 upstream.test:8080 2"});
  INFO(probe.out << probe.err);
  CHECK(probe.out.find("tunnel 403") != std::string::npos);

  // Listed: the shell that starts the probe. The probe is its child, so it may.
  Sandbox parent{
      dir.write("q.toml", endpoint_policy("{ path = \"/usr/bin/dash\" }, { path = \"/bin/dash\" }",
                                          "upstream.test", "8080")),
      dir.path() + "/events2.jsonl",
      {"--resolve", "upstream.test=" + up.address()}};
  auto child =
      parent.run({"/bin/dash", "-c",
                  helper("connect_tunnel") + " 10.200.0.1 3128 upstream.test:8080 1; true"});
  INFO(child.out << child.err);
  CHECK(child.out.find("tunnel 200") != std::string::npos);

  // A connection made by the probe and then used by dash (allowed here) is the probe's: the
  // caller is the process that connected, as it was when it connected.
  const std::string dash_script =
      "printf 'CONNECT upstream.test:8080 HTTP/1.1\\r\\nHost: upstream.test:8080\\r\\n\\r\\n' "
      ">&3; read -r line <&3; echo \"answer: $line\"";
  auto handed = parent.run({helper("connect_exec"), "10.200.0.1", "3128", "/bin/dash", "-c",
                            dash_script});
  INFO(handed.out << handed.err);
  CHECK(handed.out.find("answer: HTTP/1.1 403") != std::string::npos);
  bool named_probe = false;
  for (const auto& e : read_events(parent.events_file))
    if (e["class_uid"] == 4001 && e["disposition"] == "Blocked" &&
        e.dump().find("connect_exec") != std::string::npos)
      named_probe = true;
  CHECK(named_probe);
}

TEST_CASE("SSRF: loopback, metadata and numeric spellings are refused even when named") {
  TempDir dir;
  // Rules that appear to allow each address by name; the guard refuses them all the same.
  std::string p = test_policy();
  p += "[network_policies.internal]\n";
  for (const char* host : {"127.0.0.1", "169.254.169.254", "0.0.0.0", "localhost"})
    p += std::string("[[network_policies.internal.endpoints]]\nhost = \"") + host +
         "\"\nports = [80]\n";
  Sandbox sb{dir.write("p.toml", p), dir.path() + "/events.jsonl", {}};
  std::string script;
  for (const char* target : {"127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1",
                             "[::ffff:127.0.0.1]", "169.254.169.254", "localhost", "0.0.0.0"})
    // Through the proxy even for loopback spellings (NO_PROXY would keep them inside the
    // sandbox, whose own loopback is not the host's and is no SSRF target).
    script += std::string(kCurl) +
              " -s -m 10 --noproxy '' -o /dev/null -w '%{http_code}\\n' http://" + target +
              ":80/; ";
  auto r = sb.run({"/bin/sh", "-c", script});
  INFO(r.out << r.err);
  std::istringstream lines(r.out);
  std::string line;
  int refused = 0;
  while (std::getline(lines, line)) {
    CHECK(line == "403");
    ++refused;
  }
  CHECK(refused == 8);
}

TEST_CASE("a name that resolves to loopback or metadata is refused even when allowed") {
  TempDir dir;
  std::string p = test_policy();
  p += "[network_policies.names]\n";
  for (const char* host : {"evil.example.test", "meta.example.test"})
    p += std::string("[[network_policies.names.endpoints]]\nhost = \"") + host +
         "\"\nports = [80]\n";
  Sandbox sb{dir.write("p.toml", p),
             dir.path() + "/events.jsonl",
             {"--resolve", "evil.example.test=127.0.0.1", "--resolve",
              "meta.example.test=169.254.169.254"}};
  auto r = sb.run({"/bin/sh", "-c",
                   std::string(kCurl) + " -s -m 10 http://evil.example.test/; echo; " + kCurl +
                       " -s -m 10 http://meta.example.test/; echo"});
  INFO(r.out << r.err);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 2);
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);)
    CHECK(nlohmann::json::parse(line)["error"] == "ssrf_denied");
}

TEST_CASE("an empty network policy denies everything") {
  TempDir dir;
  Sandbox sb{dir.write("p.toml", test_policy()), dir.path() + "/events.jsonl", {}};
  auto r = sb.run(
      {kCurl, "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://example.test/"});
  CHECK(r.out == "403");
}

TEST_CASE("policy DNS: allowed names resolve, others get NXDOMAIN; captured connections work") {
  UpstreamHost up;
  up.start(8080, "http");
  TempDir dir;
  Sandbox sb{dir.write("p.toml", endpoint_policy("", "upstream.test", "8080")),
             dir.path() + "/events.jsonl",
             {"--resolve", "upstream.test=" + up.address()}};
  auto r =
      sb.run({"/bin/sh", "-c",
              "getent hosts upstream.test; echo \"allowed=$?\"; getent hosts denied.test; "
              "echo \"denied=$?\"; " +
                  std::string(kCurl) + " -s -m 10 --noproxy '*' http://upstream.test:8080/direct; " +
                  kCurl + " -s -m 10 --noproxy '*' -H 'Host: other.test' " +
                  "http://upstream.test:8080/claims-other; echo \"claims_other=$?\""});
  INFO(r.out << r.err);
  CHECK(r.out.find(up.address() + " ") != std::string::npos);
  CHECK(r.out.find("allowed=0") != std::string::npos);
  CHECK(r.out.find("denied=2") != std::string::npos);
  // Without proxy variables: captured, decided, relayed.
  CHECK(r.out.find("upstream ok: GET /direct") != std::string::npos);
  auto events = read_events(sb.events_file);
  auto dns = find_event(events, 4003, "Query");
  REQUIRE(dns != nullptr);
  CHECK(dns["query"]["hostname"] == "denied.test");
  // A captured connection to upstream.test's address that claims another name is reset.
  CHECK(up.server_output().find("/claims-other") == std::string::npos);
  CHECK(r.out.find("claims_other=0") == std::string::npos);
  // Issue 13.13: one event for it, a Detection Finding (no Network Activity beside it), naming
  // the socket owner's real uid on the host (a root sandbox's own id, never nobody or root).
  size_t findings = 0, activities = 0;
  for (const auto& e : events) {
    if (e.value("unmapped", nlohmann::json::object()).value("reason", "") != "name_mismatch")
      continue;
    (e["class_uid"] == 2004 ? findings : activities) += 1;
    CHECK(e["disposition"] == "Blocked");
    const std::string uid = e["actor"]["user"].value("uid", "");
    CHECK(std::stoul(uid) >= 2147000000UL);
    CHECK(std::stoul(uid) <= 2147999999UL);
  }
  CHECK(findings == 1);
  CHECK(activities == 0);
}

TEST_CASE("domain fronting: a tunnel whose TLS name differs from its CONNECT host is refused") {
  UpstreamHost up;
  up.start(8443, "echo");
  TempDir dir;
  Sandbox sb{dir.write("p.toml", endpoint_policy("", "upstream.test", "8443")),
             dir.path() + "/events.jsonl",
             {"--resolve", "upstream.test=" + up.address()}};
  // CONNECT upstream.test:8443, then a ClientHello for denied.test.
  auto r = sb.run({kCurl, "-s", "-m", "10", "-k", "--connect-to",
                   "denied.test:8443:upstream.test:8443", "https://denied.test:8443/"});
  CHECK(r.exit_code != 0);
  bool mismatch = false;
  for (const auto& e : read_events(sb.events_file))
    if (e["class_uid"] == 4001 && e["disposition"] == "Blocked" &&
        e.value("status_detail", "").find("does not match") != std::string::npos &&
        e["unmapped"]["reason"] == "name_mismatch")
      mismatch = true;
  CHECK(mismatch);
}

TEST_CASE(
    "SIGHUP reloads network_policies: removed endpoints close their tunnels; a broken file changes "
    "nothing") {
  UpstreamHost up;
  up.start(8080, "echo");
  TempDir dir;
  const std::string policy_file = dir.write("p.toml", endpoint_policy("", "upstream.test", "8080"));
  const std::string events_file = dir.path() + "/events.jsonl";
  const std::string output = dir.path() + "/out.txt";
  pid_t supervisor = spawn_process(
      {supervisor_bin(), "run", "--policy-file", policy_file, "--name", unique_name("hup"),
       "--events", events_file, "--resolve", "upstream.test=" + up.address(), "--",
       helper("connect_tunnel"), "10.200.0.1", "3128", "upstream.test:8080", "60"},
      output);
  REQUIRE(eventually([&] { return read_text(output).find("tunnel 200") != std::string::npos; }));

  // A broken file: rejected, reported, the tunnel stays.
  dir.write("p.toml", "version = 1\n[network_policies.x\n");
  REQUIRE(kill(supervisor, SIGHUP) == 0);
  REQUIRE(
      eventually([&] { return read_text(events_file).find("\"Rejected\"") != std::string::npos; }));
  CHECK(read_text(output).find("tunnel closed") == std::string::npos);

  // The endpoint removed: the open tunnel is closed.
  dir.write("p.toml", test_policy());
  REQUIRE(kill(supervisor, SIGHUP) == 0);
  CHECK(eventually([&] { return read_text(output).find("tunnel closed") != std::string::npos; }));
  // The swap closes tunnels first and reports after: wait for the report.
  CHECK(
      eventually([&] { return read_text(events_file).find("\"Reloaded\"") != std::string::npos; }));
  int status = 0;
  REQUIRE(waitpid(supervisor, &status, 0) == supervisor);
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE(
    "keep-alive: the client connection outlives upstreams that close; a tunnel relays bytes "
    "exactly") {
  UpstreamHost up;
  up.start(8080, "http");
  up.start(8081, "http-keepalive");
  up.start(9000, "echo");
  TempDir dir;
  Sandbox sb{dir.write("p.toml", endpoint_policy("", "upstream.test", "8080, 8081, 9000")),
             dir.path() + "/events.jsonl",
             {"--resolve", "upstream.test=" + up.address()}};
  // A low limit to start from, as a login session has: the supervisor must raise its own
  // (for the proxy) without passing that on to the agent.
  rlimit original{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &original) == 0);
  rlimit low = original;
  low.rlim_cur = std::min<rlim_t>(original.rlim_cur, 1024);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  // One curl, four transfers: it reuses its proxy connection when the proxy keeps it open.
  auto r = sb.run({"/bin/sh", "-c",
                   std::string(kCurl) +
                       " -s -m 10 -w ' connects=%{num_connects}\\n' http://upstream.test:8080/a "
                       "http://upstream.test:8080/b http://upstream.test:8081/c "
                       "http://upstream.test:8081/d; " +
                       helper("connect_tunnel") + " 10.200.0.1 3128 upstream.test:9000 30 " +
                       std::to_string(8 << 20) + "; grep 'Max open files' /proc/self/limits"});
  REQUIRE(setrlimit(RLIMIT_NOFILE, &original) == 0);
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  for (const char* path : {"/a", "/b", "/c", "/d"})
    CHECK(r.out.find(std::string("upstream ok: GET ") + path) != std::string::npos);
  // Only the first transfer connected to the proxy, although the 8080 upstream closed after
  // each answer and the third transfer went to another upstream.
  CHECK(r.out.find("connects=1") != std::string::npos);
  size_t reused = 0;
  for (size_t at = r.out.find("connects=0"); at != std::string::npos;
       at = r.out.find("connects=0", at + 1))
    ++reused;
  CHECK(reused == 3);
  // The closing upstream saw two connections; the kept-alive one served both on one.
  const std::string seen = up.server_output();
  CHECK(seen.find("GET /a host=upstream.test:8080 peer=" + up.host_address() + " conn=1\n") !=
        std::string::npos);
  CHECK(seen.find("GET /b host=upstream.test:8080 peer=" + up.host_address() + " conn=2\n") !=
        std::string::npos);
  CHECK(seen.find("GET /c host=upstream.test:8081 peer=" + up.host_address() + " conn=1\n") !=
        std::string::npos);
  CHECK(seen.find("GET /d host=upstream.test:8081 peer=" + up.host_address() + " conn=1\n") !=
        std::string::npos);
  // 8 MiB of a pattern through a CONNECT tunnel and back, byte for byte.
  CHECK(r.out.find("tunnel 200\necho ok " + std::to_string(8 << 20) + "\n") != std::string::npos);
  // The supervisor raised its own open-file limit for the proxy, not the agent's.
  CHECK(r.out.find("Max open files            " + std::to_string(low.rlim_cur) + " ") !=
        std::string::npos);
}

TEST_CASE("packets the firewall refuses are reported as bypass findings") {
  TempDir dir;
  Sandbox sb{dir.write("p.toml", test_policy()), dir.path() + "/events.jsonl", {}};
  auto r = sb.run({"/bin/sh", "-c",
                   helper("try_udp") + " 198.51.100.1 123 2000; " + helper("try_connect") +
                       " 198.51.100.2 80 5000; " + helper("try_udp") + " 2001:db8::1 5353 2000"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  auto found = [&](const std::string& ip, int port, const std::string& protocol) {
    for (const auto& e : read_events(sb.events_file))
      if (e["class_uid"] == 2004 && e["dst_endpoint"]["ip"] == ip &&
          e["dst_endpoint"]["port"] == port &&
          e["connection_info"]["protocol_name"] == protocol &&
          e["unmapped"]["reason"] == "refused_by_firewall")
        return true;
    return false;
  };
  CHECK(found("198.51.100.1", 123, "udp"));
  CHECK(found("198.51.100.2", 80, "tcp"));
  CHECK(found("2001:db8::1", 5353, "udp"));
}

// Issue 13.2: the proxy and the policy DNS ask for "name." (the host's search list never rewrites
// a name the sandbox asked for), which glibc's files backend never matches: an internal host the
// operator put in /etc/hosts was invalid_host for every client. Here the supervisor runs with a
// hosts file of ours bound over /etc/hosts (in a mount namespace of its own).
TEST_CASE("names in the host's /etc/hosts resolve in the sandbox, exactly as asked") {
  UpstreamHost up;
  up.start(8080, "http");
  TempDir dir;
  const std::string hosts = dir.write(
      "hosts", "127.0.0.1 localhost\n" + up.address() + " registry.osh-internal regshort\n");
  const std::string policy = dir.write(
      "p.toml", endpoint_policy("", "registry.osh-internal", "8080") +
                    "[network_policies.short]\n[[network_policies.short.endpoints]]\n"
                    "host = \"regshort\"\nports = [8080]\n");
  const std::vector<std::string> argv = {
      "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
      "mount --bind \"$0\" /etc/hosts && exec \"$@\"", hosts, supervisor_bin(), "run",
      "--policy-file", policy, "--name", unique_name("hosts"), "--", "/bin/sh", "-c",
      std::string("getent hosts registry.osh-internal; ") + kCurl +
          " -s -m 10 http://registry.osh-internal:8080/proxied; echo; " + kCurl +
          " -s -m 10 --noproxy '*' http://regshort:8080/captured; echo"};
  auto r = run_process(argv, 120);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find(up.address() + " ") != std::string::npos);  // the policy DNS answers it
  CHECK(r.out.find("upstream ok: GET /proxied") != std::string::npos);
  CHECK(r.out.find("upstream ok: GET /captured") != std::string::npos);
}
