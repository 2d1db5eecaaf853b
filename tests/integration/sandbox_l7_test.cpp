// L7 end to end (issue 15): an agent in a sandbox, the supervisor's proxy terminating TLS with
// the sandbox's own CA, and upstreams (tests/helpers/tls_upstream: HTTPS with a test CA of its
// own, plain HTTP, WebSocket, a CONNECT proxy) in a network namespace this test creates.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/events.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/upstream.hpp"

using namespace openshell::testing;

namespace {

const char* kCurl = "/usr/bin/curl";

// One network_policies entry with one endpoint: `host`, `port` and the endpoint's other lines.
std::string rule(const std::string& name, const std::string& host, int port,
                 const std::string& fields) {
  return "[network_policies." + name + "]\n[[network_policies." + name + ".endpoints]]\nhost = \"" +
         host + "\"\nport = " + std::to_string(port) + "\n" + fields + "\n";
}

struct Sandbox {
  std::string name = unique_name("l7");
  std::string policy_file;
  std::string events_file;
  std::vector<std::string> extra;
  Outcome run(const std::string& script) {
    std::vector<std::string> argv = {supervisor_bin(), "run", "--policy-file", policy_file,
                                     "--name",         name,  "--events",      events_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), {"--", "/bin/sh", "-c", script});
    return run_process(argv, 180);
  }
  // Whether a Network Activity event mentions `text` (a reason code).
  [[nodiscard]] bool network_event_says(const std::string& text) const {
    const auto events = read_events(events_file);
    return std::any_of(events.begin(), events.end(), [&](const nlohmann::json& e) {
      return e.value("class_uid", 0) == 4001 && e.dump().find(text) != std::string::npos;
    });
  }
  [[nodiscard]] std::vector<nlohmann::json> http_events() const {
    std::vector<nlohmann::json> out;
    for (const auto& e : read_events(events_file))
      if (e.value("class_uid", 0) == 4002) out.push_back(e);
    return out;
  }
};

// An upstream (tls_upstream MODE on PORT) and a sandbox whose policy is test_policy() with
// `rules`, each of `hosts` resolving to the upstream. For "https" the upstream's own CA (in ca)
// is trusted with --upstream-ca unless `trust_ca` is false.
struct Setup {
  Setup(const std::string& mode, uint16_t port, const std::string& rules,
        const std::vector<std::string>& hosts, bool trust_ca = true) {
    up.start_tls_upstream(port, mode == "https" ? "https upstream.test " + ca : mode);
    sb.policy_file = dir.write("p.toml", test_policy("", rules));
    sb.events_file = dir.path() + "/events.jsonl";
    for (const auto& host : hosts)
      sb.extra.insert(sb.extra.end(), {"--resolve", host + "=" + up.address()});
    if (mode == "https" && trust_ca) sb.extra.insert(sb.extra.end(), {"--upstream-ca", ca});
  }
  UpstreamHost up;
  TempDir dir;
  std::string ca = dir.path() + "/upstream-ca.pem";
  Sandbox sb;
};

// The lines of `text` that start with `prefix` ("== a"), each with what follows it up to the
// next such line: a script's answers, one per labelled step.
std::map<std::string, std::string> sections(const std::string& text) {
  std::map<std::string, std::string> out;
  std::string current;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("== ", 0) == 0) {
      current = line.substr(3);
      out[current];
      continue;
    }
    if (!current.empty()) out[current] += line + "\n";
  }
  return out;
}

// The HTTP Activity event for METHOD PATH on HOST, or null.
nlohmann::json http_event(const std::vector<nlohmann::json>& events, const std::string& host,
                          const std::string& method, const std::string& path) {
  for (const auto& e : events) {
    const auto& req = e["http_request"];
    if (req.value("http_method", "") == method && req["url"].value("hostname", "") == host &&
        req["url"].value("path", "") == path)
      return e;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("TLS is terminated with the sandbox's own CA: curl https works without -k") {
  Setup t("https", 8443,
          rule("api", "upstream.test", 8443, "protocol = \"rest\"\naccess = \"full\""),
          {"upstream.test"});
  auto& [up, dir, ca, sb] = t;
  // Through the explicit proxy (CONNECT, curl honours HTTPS_PROXY) and captured (--noproxy).
  // And a client with a trust store of its own (the host's roots alone): refused, and told.
  auto r = sb.run(std::string("echo '== explicit'; ") + kCurl +
                  " -sS -m 20 -v https://upstream.test:8443/hello 2>&1; echo '== captured'; " +
                  kCurl + " -sS -m 20 --noproxy '*' -v https://upstream.test:8443/there 2>&1; " +
                  "echo '== own trust'; " + kCurl +
                  " -sS -m 20 --cacert /etc/ssl/certs/ca-certificates.crt "
                  "https://upstream.test:8443/mine 2>&1; true");
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  auto s = sections(r.out);
  for (const auto& [step, path] : {std::pair{"explicit", "/hello"}, {"captured", "/there"}}) {
    INFO(step);
    CHECK(s[step].find(std::string("upstream ok: GET ") + path + " host=upstream.test:8443") !=
          std::string::npos);
    // The certificate the agent saw was issued by this sandbox's CA.
    CHECK(s[step].find("issuer: O=openshell; CN=openshell sandbox CA (" + sb.name + ")") !=
          std::string::npos);
    CHECK(s[step].find("subjectAltName: host \"upstream.test\" matched") != std::string::npos);
  }
  CHECK(s["own trust"].find("SSL certificate problem") != std::string::npos);
  CHECK(up.server_output().find("/mine") == std::string::npos);
  CHECK(sb.network_event_says("tls_refused"));
  // Each request is an HTTP Activity event: method, host, path, status, the rule.
  const auto events = sb.http_events();
  for (const char* path : {"/hello", "/there"}) {
    const auto e = http_event(events, "upstream.test", "GET", path);
    INFO(path);
    REQUIRE(e != nullptr);
    CHECK(e["http_response"]["code"] == 200);
    CHECK(e["unmapped"]["l7_rule"] == "access full");
    CHECK(e["unmapped"]["enforcement"] == "enforce");
    CHECK(e["status"] == "Success");
    CHECK(e.dump().find("User-Agent") == std::string::npos);  // nothing of the headers
  }
}

TEST_CASE("tls = \"skip\" relays the TLS bytes untouched: the agent sees the upstream's own CA") {
  Setup t("https", 8443,
          rule("api", "upstream.test", 8443,
               "protocol = \"rest\"\naccess = \"read-only\"\ntls = \"skip\""),
          {"upstream.test"});
  auto& [up, dir, ca, sb] = t;
  // The agent must trust the upstream's CA itself now (a copy inside: the test's directory is
  // not); a POST passes, as nothing is read.
  auto r = sb.run("printf '%s' '" + read_text(ca) + "' > /tmp/up.pem; " + kCurl +
                  " -sS -m 20 -v --cacert /tmp/up.pem -X POST https://upstream.test:8443/raw 2>&1");
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("issuer: O=openshell; CN=openshell sandbox CA (test-upstream)") !=
        std::string::npos);
  CHECK(r.out.find("upstream ok: POST /raw") != std::string::npos);
  CHECK(sb.http_events().empty());
}

TEST_CASE("an upstream certificate the proxy cannot verify gets the client a 502, never bytes") {
  Setup t("https", 8443,
          rule("api", "upstream.test", 8443, "protocol = \"rest\"\naccess = \"full\""),
          {"upstream.test"}, /*trust_ca=*/false);
  auto& [up, dir, ca, sb] = t;
  auto r = sb.run(std::string(kCurl) +
                  " -sS -m 20 -w ' %{http_code}' https://upstream.test:8443/secret 2>&1");
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.substr(r.out.size() - 4) == " 502");
  const auto body = nlohmann::json::parse(r.out.substr(0, r.out.size() - 4));
  CHECK(body["error"] == "upstream_tls_failed");
  CHECK(body["reason"].get<std::string>().find("unable to get local issuer certificate") !=
        std::string::npos);
  CHECK(up.server_output().find("request ") == std::string::npos);
  const auto e = http_event(sb.http_events(), "upstream.test", "GET", "/secret");
  REQUIRE(e != nullptr);
  CHECK(e["http_response"]["code"] == 502);
  CHECK(e["status"] == "Failure");
}

TEST_CASE("REST rules decide every request: access, globs, deny rules, queries, audit") {
  std::string rules;
  rules += rule("ro", "ro.test", 8443, "protocol = \"rest\"\naccess = \"read-only\"");
  rules += rule("repos", "repos.test", 8443,
                "protocol = \"rest\"\nrules = [{ allow = { method = \"GET\", path = \"/repos/**\" "
                "} }, { allow = { method = \"GET\", path = \"/one/*\" } }]");
  rules += rule("nodelete", "deny.test", 8443,
                "protocol = \"rest\"\naccess = \"full\"\ndeny_rules = [{ method = \"DELETE\", "
                "path = \"/**\" }]");
  rules += rule("releases", "query.test", 8443,
                "protocol = \"rest\"\nrules = [{ allow = { method = \"GET\", path = \"/releases\", "
                "query = { tag = { any = [\"v1.*\"] } } } }]");
  rules += rule("watched", "audit.test", 8443,
                "protocol = \"rest\"\naccess = \"read-only\"\nenforcement = \"audit\"");
  Setup t("https", 8443, rules, {"ro.test", "repos.test", "deny.test", "query.test", "audit.test"});
  auto& [up, dir, ca, sb] = t;
  const std::string curl = std::string(kCurl) + " -sS -m 20 -w ' %{http_code}\\n' ";
  const std::vector<std::pair<std::string, std::string>> steps = {
      {"ro get", "https://ro.test:8443/x"},
      {"ro post", "-i -X POST https://ro.test:8443/x"},
      {"repos deep", "https://repos.test:8443/repos/a/b"},
      {"repos user", "https://repos.test:8443/user"},
      {"repos one", "https://repos.test:8443/one/a"},
      {"repos one deeper", "https://repos.test:8443/one/a/b"},
      {"repos dotdot", "--path-as-is https://repos.test:8443/repos/../user"},
      {"repos slash", "https://repos.test:8443/repos/a%2Fb"},
      {"deny delete", "-X DELETE https://deny.test:8443/x"},
      {"deny put", "-X PUT https://deny.test:8443/x"},
      {"query v1", "'https://query.test:8443/releases?tag=v1.2'"},
      {"query v3", "'https://query.test:8443/releases?tag=v3'"},
      {"query none", "https://query.test:8443/releases"},
      {"audit post", "-X POST https://audit.test:8443/x"},
      {"fronting", "-H 'Host: evil.test' https://ro.test:8443/x"},
      // A denial leaves the connection usable: the second URL reuses it (no new connect).
      {"reuse",
       "-w ' %{http_code} %{num_connects}\\n' https://repos.test:8443/user "
       "https://repos.test:8443/repos/z"},
  };
  std::string script;
  for (const auto& [label, args] : steps)
    script += "echo '== " + label + "'; " + curl + args + "; ";
  auto r = sb.run(script);
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  auto s = sections(r.out);
  const auto status = [&](const std::string& label) {
    const std::string& text = s[label];
    return text.size() >= 4 ? text.substr(text.size() - 4, 3) : text;
  };
  CHECK(status("ro get") == "200");
  // 403 with the JSON an agent can read, and the policy in X-OpenShell-Policy.
  CHECK(status("ro post") == "403");
  CHECK(s["ro post"].find("X-OpenShell-Policy: ro\r") != std::string::npos);
  {
    const std::string& text = s["ro post"];
    const auto body =
        nlohmann::json::parse(text.substr(text.find('{'), text.rfind('}') - text.find('{') + 1));
    CHECK(body["error"] == "policy_denied");
    CHECK(body["policy"] == "ro");
    CHECK(body["rule"] == "access read-only");
    CHECK(body["method"] == "POST");
    CHECK(body["path"] == "/x");
    CHECK(body["reason"] == "access read-only does not allow POST");
  }
  CHECK(status("repos deep") == "200");
  CHECK(status("repos user") == "403");
  CHECK(status("repos one") == "200");
  CHECK(status("repos one deeper") == "403");  // '*' is one segment
  CHECK(status("repos dotdot") == "403");
  CHECK(s["repos dotdot"].find("\"path\":\"/user\"") != std::string::npos);  // decided as /user
  CHECK(status("repos slash") == "403");
  CHECK(s["repos slash"].find("%2F") != std::string::npos);
  CHECK(status("deny delete") == "403");
  CHECK(s["deny delete"].find("\"rule\":\"deny_rules[0]\"") != std::string::npos);
  CHECK(status("deny put") == "200");
  CHECK(status("query v1") == "200");
  CHECK(status("query v3") == "403");
  CHECK(status("query none") == "403");
  CHECK(status("audit post") == "200");  // audit: forwarded, and logged as a denial
  CHECK(status("fronting") == "403");
  CHECK(s["fronting"].find("host_mismatch") != std::string::npos);
  CHECK(s["reuse"].find("} 403 1\n") != std::string::npos);
  CHECK(s["reuse"].find("upstream ok: GET /repos/z") != std::string::npos);
  CHECK(s["reuse"].substr(s["reuse"].size() - 7) == " 200 0\n");  // the same connection

  // What was denied never reached the upstream; what was allowed (and audited) did.
  const std::string seen = up.server_output();
  for (const char* never :
       {"request POST /x host=ro.test", "request GET /user", "request GET /one/a/b",
        "request DELETE", "tag=v3", "request GET /releases host", "host=evil.test", "%2F"})
    CHECK(seen.find(never) == std::string::npos);
  for (const char* reached : {"request GET /x host=ro.test", "request GET /repos/a/b",
                              "request PUT /x host=deny.test", "request GET /releases?tag=v1.2",
                              "request POST /x host=audit.test", "request GET /repos/z"})
    CHECK(seen.find(reached) != std::string::npos);

  const auto events = sb.http_events();
  const auto denied = http_event(events, "repos.test", "GET", "/user");
  REQUIRE(denied != nullptr);
  CHECK(denied["status"] == "Failure");
  CHECK(denied["http_response"]["code"] == 403);
  const auto audited = http_event(events, "audit.test", "POST", "/x");
  REQUIRE(audited != nullptr);
  CHECK(audited["status"] == "Success");
  CHECK(audited["unmapped"]["enforcement"] == "audit");
  CHECK(audited["http_response"]["code"] == 200);
  const auto query = http_event(events, "query.test", "GET", "/releases");
  REQUIRE(query != nullptr);
  CHECK(query.dump().find("tag=") == std::string::npos);  // never the query
}

TEST_CASE("hostile HTTP is refused and closed, and the upstream receives nothing of it") {
  Setup t("http", 8080,
          rule("plain", "h.test", 8080, "protocol = \"rest\"\naccess = \"read-only\""), {"h.test"});
  auto& [up, dir, ca, sb] = t;
  const std::string host = "Host: h.test:8080\\r\\n";
  const std::string big(20000, 'a');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cl and te", "POST /a HTTP/1.1\\r\\n" + host +
                        "Content-Length: 5\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n"
                        "GET /smuggled HTTP/1.1\\r\\n" +
                        host + "\\r\\n"},
      {"two equal lengths",
       "GET /a HTTP/1.1\\r\\n" + host + "Content-Length: 3\\r\\nContent-Length: 3\\r\\n\\r\\nabc"},
      {"two lengths",
       "GET /a HTTP/1.1\\r\\n" + host + "Content-Length: 3\\r\\nContent-Length: 30\\r\\n\\r\\nabc"},
      {"obs-fold", "GET /a HTTP/1.1\\r\\n" + host + "X-A: b\\r\\n c\\r\\n\\r\\n"},
      {"bare lf", "GET /a HTTP/1.1\\n" + std::string("Host: h.test:8080\\n\\n")},
      {"bare cr", "GET /a HTTP/1.1\\r\\n" + host + "X-A: b\\rc\\r\\n\\r\\n"},
      {"huge head", "GET /a HTTP/1.1\\r\\n" + host + "X-Big: " + big + "\\r\\n\\r\\n"},
      {"bad chunk", "GET /a HTTP/1.1\\r\\n" + host +
                        "Transfer-Encoding: chunked\\r\\n\\r\\nzz\\r\\nabc\\r\\n0\\r\\n\\r\\n"},
      {"behind a denial", "POST /a HTTP/1.1\\r\\n" + host + "Content-Length: 0\\r\\n\\r\\n" +
                              "GET /pipelined HTTP/1.1\\r\\n" + host + "\\r\\n"},
  };
  // getent asks the sandbox's DNS, which opens the address for the capture; then raw bytes.
  std::string script = "addr=$(getent hosts h.test | cut -d' ' -f1); ";
  for (const auto& [label, bytes] : cases)
    script += "echo; echo '== " + label + "'; " + helper("send_raw") + " \"$addr\" 8080 '" + bytes +
              "' 3000; ";
  // After all that, a well-formed request still works.
  script += "echo; echo '== fine'; " + helper("send_raw") +
            " \"$addr\" 8080 'GET /fine HTTP/1.1\\r\\n" + host +
            "Connection: close\\r\\n\\r\\n' 3000";
  auto r = sb.run(script);
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  auto s = sections(r.out);
  for (const auto& [label, bytes] : cases) {
    INFO(label << ": " << s[label]);
    const std::string expected = label == "huge head"         ? "HTTP/1.1 431 "
                                 : label == "behind a denial" ? "HTTP/1.1 403 "
                                 : label == "bad chunk"       ? ""
                                                              : "HTTP/1.1 400 ";
    if (!expected.empty()) CHECK(s[label].rfind(expected, 0) == 0);
    // One answer, then the connection closed: never a second one.
    CHECK(s[label].find("HTTP/1.1", 1) == std::string::npos);
  }
  CHECK(s["fine"].rfind("HTTP/1.1 200 ", 0) == 0);
  // Only the well-formed request reached the upstream.
  const std::string seen = up.server_output();
  CHECK(seen.find("request GET /fine") != std::string::npos);
  size_t requests = 0;
  for (auto at = seen.find("request "); at != std::string::npos; at = seen.find("request ", at + 1))
    ++requests;
  CHECK(requests == 1);
}

TEST_CASE("WebSocket: the upgrade is judged like a request, then frames pass both ways") {
  Setup t(
      "http", 8080,
      rule("ws", "ws.test", 8080,
           "protocol = \"websocket\"\nrules = [{ allow = { method = \"GET\", path = \"/ws\" } }]"),
      {"ws.test"});
  auto& [up, dir, ca, sb] = t;
  const std::string upgrade =
      " HTTP/1.1\\r\\nHost: ws.test:8080\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n";
  // "hello", masked with 01 02 03 04, as a client must send it.
  const std::string frame = "\\x81\\x85\\x01\\x02\\x03\\x04\\x69\\x67\\x6f\\x68\\x6e";
  const std::string script = "addr=$(getent hosts ws.test | cut -d' ' -f1); echo '== allowed'; " +
                             helper("send_raw") + " \"$addr\" 8080 'GET /ws" + upgrade + frame +
                             "' 2000; echo; echo '== denied'; " + helper("send_raw") +
                             " \"$addr\" 8080 'GET /other" + upgrade + frame + "' 2000";
  auto r = sb.run(script);
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  auto s = sections(r.out);
  CHECK(s["allowed"].rfind("HTTP/1.1 101 ", 0) == 0);
  CHECK(s["allowed"].find("\x81\x05hello") != std::string::npos);  // the echo, unmasked
  CHECK(s["denied"].rfind("HTTP/1.1 403 ", 0) == 0);
  const std::string seen = up.server_output();
  CHECK(seen.find("websocket /ws conn=") != std::string::npos);
  CHECK(seen.find("message hello") != std::string::npos);
  CHECK(seen.find("/other") == std::string::npos);
}

TEST_CASE("bodies stream through inspection: Expect 100-continue and chunked uploads") {
  Setup t("https", 8443,
          rule("api", "upstream.test", 8443, "protocol = \"rest\"\naccess = \"read-write\""),
          {"upstream.test"});
  auto& [up, dir, ca, sb] = t;
  // 3 MiB: many times the proxy's relay buffer, so it cannot have been held whole.
  const std::string make = "head -c 3145728 /dev/zero > /tmp/body; ";
  auto r = sb.run(make + "echo '== expect'; " + kCurl +
                  " -sS -m 30 -H 'Expect: 100-continue' --data-binary @/tmp/body "
                  "https://upstream.test:8443/upload; echo '== chunked'; " +
                  kCurl +
                  " -sS -m 30 -H 'Transfer-Encoding: chunked' --data-binary @/tmp/body "
                  "-X PUT https://upstream.test:8443/chunks");
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  auto s = sections(r.out);
  CHECK(s["expect"].find("upstream ok: POST /upload host=upstream.test:8443 body=3145728") !=
        std::string::npos);
  CHECK(s["chunked"].find("upstream ok: PUT /chunks host=upstream.test:8443 body=3145728") !=
        std::string::npos);
}

TEST_CASE("an operator's upstream proxy carries what the policy allowed, nothing else") {
  UpstreamHost up;
  up.start_tls_upstream(8080, "http");
  up.start_tls_upstream(3128, "connect-proxy upstream.test=" + up.address());
  TempDir dir;
  Sandbox sb;
  sb.policy_file = dir.write("p.toml", test_policy("", rule("api", "upstream.test", 8080, "")));
  sb.events_file = dir.path() + "/events.jsonl";
  sb.extra = {"--resolve",        "upstream.test=" + up.address(),
              "--resolve",        "other.test=" + up.address(),
              "--upstream-proxy", "http://" + up.address() + ":3128"};
  auto r = sb.run(std::string("echo '== allowed'; ") + kCurl +
                  " -sS -m 20 http://upstream.test:8080/a; echo '== denied'; " + kCurl +
                  " -sS -m 20 -w ' %{http_code}' http://other.test:8080/b");
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  auto s = sections(r.out);
  CHECK(s["allowed"].find("upstream ok: GET /a host=upstream.test:8080") != std::string::npos);
  CHECK(s["denied"].find(" 403") != std::string::npos);
  const std::string seen = up.server_output();
  CHECK(seen.find("connect upstream.test:8080") != std::string::npos);
  CHECK(seen.find("other.test") == std::string::npos);
}

// Issue 15.9: the shipped github-readonly.toml, as it is, against stand-ins for api.github.com
// and github.com: reads pass, writes and pushes never leave the sandbox.
TEST_CASE("policy-examples/github-readonly.toml: GitHub read-only, enforced request by request") {
  Setup t("https", 443, "", {"api.github.com", "github.com"});
  auto& [up, dir, ca, sb] = t;
  sb.policy_file = policy_examples_dir() + "/github-readonly.toml";
  const std::string curl = std::string(kCurl) + " -sS -m 20 -w ' %{http_code}\\n' ";
  const std::string git = "/usr/bin/git -c http.lowSpeedTime=20 ";
  auto r =
      sb.run("echo '== api read'; " + curl +
             "https://api.github.com/repos/o/r; "
             "echo '== api write'; " +
             curl +
             "-X POST https://api.github.com/repos/o/r/issues; "
             "echo '== api delete'; " +
             curl +
             "-X DELETE https://api.github.com/repos/o/r; "
             "echo '== fetch'; " +
             git +
             "ls-remote https://github.com/o/r.git 2>&1; "
             "echo '== push'; cd /tmp && " +
             git + "init -q r && cd r && " + git +
             "-c user.email=a@example.com -c user.name=a commit -q --allow-empty -m x && " + git +
             "push https://github.com/o/r.git HEAD:main 2>&1; "
             "echo '== curl to git'; " +
             curl + "'https://github.com/o/r.git/info/refs?service=git-upload-pack' 2>&1; true");
  INFO(r.out << r.err << up.server_output());
  REQUIRE(r.exit_code == 0);
  auto s = sections(r.out);
  CHECK(s["api read"].find("upstream ok: GET /repos/o/r host=api.github.com") != std::string::npos);
  CHECK(s["api write"].find("\"rule\":\"access read-only\"") != std::string::npos);
  CHECK(s["api write"].find(" 403\n") != std::string::npos);
  CHECK(s["api delete"].find("\"rule\":\"deny_rules[0]\"") != std::string::npos);
  // git's ref discovery went out (the stand-in's answer is no git protocol, so git then fails);
  // a push's discovery was refused, with git saying so.
  CHECK(s["push"].find("403") != std::string::npos);
  // curl is not one of github_git's binaries: its tunnel is refused before any request is read.
  CHECK(s["curl to git"].find("CONNECT tunnel failed, response 403") != std::string::npos);
  CHECK(sb.network_event_says("binary_not_allowed"));
  const std::string seen = up.server_output();
  CHECK(seen.find("request GET /o/r.git/info/refs?service=git-upload-pack host=github.com") !=
        std::string::npos);
  for (const char* never : {"POST /repos", "DELETE", "git-receive-pack"}) {
    INFO(never);
    CHECK(seen.find(never) == std::string::npos);
  }
}

// Every sandbox has its CA from the start, so a reload that makes an endpoint REST reaches a
// running sandbox: no restart, the agent's next connection is inspected.
TEST_CASE("a reload that makes an endpoint REST is enforced in the running sandbox") {
  Setup t("https", 8443, rule("api", "upstream.test", 8443, ""), {"upstream.test"});
  auto& [up, dir, ca, sb] = t;
  TempDir work;  // /sandbox: the test says "go" there
  REQUIRE(::chown(work.path().c_str(), 1000, 1000) == 0);
  const std::string output = dir.path() + "/out.txt";
  const std::string curl = std::string(kCurl) + " -s -m 20 -w ' %{http_code}\\n' ";
  const pid_t supervisor = spawn_process(
      [&] {
        std::vector<std::string> argv = {
            supervisor_bin(), "run",      "--policy-file", sb.policy_file, "--name",
            sb.name,          "--events", sb.events_file,  "--workdir",    work.path()};
        argv.insert(argv.end(), sb.extra.begin(), sb.extra.end());
        argv.insert(argv.end(),
                    {"--", "/bin/sh", "-c",
                     // L4: the upstream's own certificate reaches curl, which does not trust it.
                     curl +
                         "https://upstream.test:8443/a; echo ready; "
                         "while [ ! -e /sandbox/go ]; do sleep 0.1; done; " +
                         curl + "-X POST https://upstream.test:8443/b"});
        return argv;
      }(),
      output);
  const bool ready =
      eventually([&] { return read_text(output).find("ready") != std::string::npos; }, 30000);
  INFO(read_text(output));
  REQUIRE(ready);
  dir.write("p.toml", test_policy("", rule("api", "upstream.test", 8443,
                                           "protocol = \"rest\"\naccess = \"read-only\"")));
  REQUIRE(kill(supervisor, SIGHUP) == 0);
  REQUIRE(eventually(
      [&] { return read_text(sb.events_file).find("\"Reloaded\"") != std::string::npos; }));
  work.write("go", "");
  int status = 0;
  REQUIRE(waitpid(supervisor, &status, 0) == supervisor);
  const std::string out = read_text(output);
  INFO(out << up.server_output());
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out.find(" 000\nready\n") != std::string::npos);  // not inspected, not trusted
  CHECK(out.find("\"rule\":\"access read-only\"} 403\n") != std::string::npos);
  CHECK(up.server_output().find("POST /b") == std::string::npos);
}
