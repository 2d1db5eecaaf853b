#include <unistd.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "core/event_sink.hpp"
#include "core/ocsf.hpp"

using namespace openshell;

TEST_CASE("OCSF events carry the common attributes and the pinned schema version") {
  ocsf::ProcessInfo p;
  p.pid = 4242;
  p.exe = "/usr/bin/python3";
  p.uid = 1000;
  auto j = ocsf::process_launch("box", p).to_json();
  CHECK(j["class_uid"] == 1007);
  CHECK(j["category_uid"] == 1);
  CHECK(j["activity_id"] == 1);
  CHECK(j["type_uid"] == 100701);
  CHECK(j["metadata"]["version"] == "1.7.0");
  CHECK(j["metadata"]["product"]["name"] == "openshell");
  CHECK(j["process"]["pid"] == 4242);
  CHECK(j["process"]["name"] == "python3");
  CHECK(j["process"]["user"]["uid"] == "1000");
  CHECK(j["unmapped"]["sandbox"] == "box");
  CHECK(j["time"].get<int64_t>() > 1700000000000);
}

TEST_CASE("exit events record status and signal") {
  ocsf::ProcessInfo p;
  p.pid = 7;
  auto j = ocsf::process_exit("box", p, 137, 9, "killed by the OOM killer").to_json();
  CHECK(j["activity_name"] == "Terminate");
  CHECK(j["exit_code"] == 137);
  CHECK(j["status"] == "Failure");
  CHECK(j["status_detail"] == "killed by the OOM killer");
  CHECK(j["process"]["xattributes"]["signal"] == 9);
}

TEST_CASE("config events are Device Config State Change with their fields") {
  auto e = ocsf::config_change("box", "Skipped", ocsf::Severity::kMedium, ocsf::StatusId::kFailure,
                               "skipping", {{"file", {{"path", "/x"}}}});
  auto j = e.to_json();
  CHECK(j["class_uid"] == 5019);
  CHECK(j["severity"] == "Medium");
  CHECK(j["file"]["path"] == "/x");
}

TEST_CASE("invalid UTF-8 in a field does not break the event line") {
  ocsf::ProcessInfo p;
  p.exe = std::string("/tmp/\xff\xfe");
  std::string line = ocsf::process_launch("box", p).to_json_line();
  CHECK(line.find('\n') == std::string::npos);
  CHECK(nlohmann::json::parse(line)["class_uid"] == 1007);
}

TEST_CASE("the JSONL sink appends one line per event") {
  char tmpl[] = "/tmp/openshell-sink-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  close(fd);
  {
    auto sink = JsonlFileSink::open(tmpl);
    REQUIRE(sink.ok());
    ocsf::ProcessInfo p;
    (*sink)->emit(ocsf::process_launch("a", p));
    (*sink)->emit(ocsf::process_launch("b", p));
  }
  std::ifstream in(tmpl);
  std::string l1, l2, l3;
  std::getline(in, l1);
  std::getline(in, l2);
  CHECK_FALSE(std::getline(in, l3));
  CHECK(nlohmann::json::parse(l1)["unmapped"]["sandbox"] == "a");
  CHECK(nlohmann::json::parse(l2)["unmapped"]["sandbox"] == "b");
  unlink(tmpl);
}

TEST_CASE("the JSONL sink rotates to PATH.1 at its size bound; a tee reaches every sink") {
  char tmpl[] = "/tmp/openshell-sink-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  close(fd);
  const std::string path = tmpl, old = path + ".1";
  ocsf::ProcessInfo p;
  const size_t line_bytes = ocsf::process_launch("s-0", p).to_json_line().size() + 1;
  auto memory = std::make_unique<MemorySink>();
  MemorySink* seen = memory.get();
  {
    auto sink = JsonlFileSink::open(path, line_bytes * 3);  // three lines per file
    REQUIRE(sink.ok());
    TeeSink tee;
    tee.add(std::move(*sink));
    tee.add(std::move(memory));
    for (int i = 0; i < 8; ++i) tee.emit(ocsf::process_launch("s-" + std::to_string(i), p));
    CHECK(seen->events().size() == 8);
  }
  auto sandboxes = [](const std::string& file) {
    std::ifstream in(file);
    std::vector<std::string> names;
    for (std::string line; std::getline(in, line);)
      names.push_back(nlohmann::json::parse(line)["unmapped"]["sandbox"]);
    return names;
  };
  // 0 1 2 | 3 4 5 | 6 7: the first file was replaced by the second rotation.
  CHECK(sandboxes(old) == std::vector<std::string>{"s-3", "s-4", "s-5"});
  CHECK(sandboxes(path) == std::vector<std::string>{"s-6", "s-7"});
  unlink(path.c_str());
  unlink(old.c_str());
}

TEST_CASE("connection events name the protocol only when known") {
  openshell::ocsf::ConnectionInfo c;
  c.host = "198.51.100.1";
  c.port = 123;
  c.protocol = "udp";
  c.mode = "raw";
  auto with = nlohmann::json::parse(openshell::ocsf::bypass_finding("s", c).to_json_line());
  CHECK(with["class_uid"] == 2004);
  CHECK(with["connection_info"]["protocol_name"] == "udp");
  c.protocol.clear();
  auto without = nlohmann::json::parse(openshell::ocsf::network_activity("s", c).to_json_line());
  CHECK_FALSE(without.contains("connection_info"));
}

TEST_CASE("HTTP Activity: method, canonical path, status and rule; never the query") {
  ocsf::HttpInfo h;
  h.connection.host = "api.example.com";
  h.connection.port = 443;
  h.connection.binary = "/usr/bin/curl";
  h.connection.pid = 42;
  h.connection.allowed = false;
  h.connection.rule = "github";
  h.connection.detail = "access read-only does not allow POST";
  h.method = "post";
  h.path = "/repos/a?token=secret";
  h.status = 403;
  h.l7_rule = "access read-only";
  const auto j = ocsf::http_activity("s1", h).to_json();
  CHECK(j["class_uid"] == 4002);
  CHECK(j["activity_id"] == 6);
  CHECK(j["activity_name"] == "Post");
  CHECK(j["http_request"]["http_method"] == "POST");
  CHECK(j["http_request"]["url"]["path"] == "/repos/a");
  CHECK(j["http_request"]["url"]["hostname"] == "api.example.com");
  CHECK(j["http_response"]["code"] == 403);
  CHECK(j["disposition"] == "Blocked");
  CHECK(j["firewall_rule"]["name"] == "github");
  CHECK(j["unmapped"]["l7_rule"] == "access read-only");
  CHECK(j["unmapped"]["enforcement"] == "enforce");
  CHECK(j["status_detail"] == "access read-only does not allow POST");
  CHECK(j.dump().find("secret") == std::string::npos);
  CHECK(j.dump().find("token") == std::string::npos);
  h.method = "PROPFIND";
  h.enforced = false;
  h.connection.allowed = true;
  h.connection.audit = true;
  const auto audit = ocsf::http_activity("s1", h).to_json();
  CHECK(audit["activity_id"] == 99);
  CHECK(audit["activity_name"] == "PROPFIND");
  CHECK(audit["unmapped"]["enforcement"] == "audit");
  CHECK(audit["disposition"] == "Allowed");
  CHECK(audit.find("http_response") != audit.end());
  h.status = 0;  // no answer yet
  const auto unanswered = ocsf::http_activity("s1", h).to_json();
  CHECK(unanswered.find("http_response") == unanswered.end());
}
