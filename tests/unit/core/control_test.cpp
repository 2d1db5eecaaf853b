#include "core/control.hpp"

#include <catch2/catch.hpp>
#include <string>

using namespace openshell::control;

TEST_CASE("control: every request survives encode and parse") {
  Request exec;
  exec.op = Op::kExec;
  exec.exec.argv = {"/bin/sh", "-c", "echo hi"};
  exec.exec.env = {"A=1", "EMPTY="};
  exec.exec.cwd = "/sandbox";
  exec.exec.tty = true;
  auto frame = encode_request(exec);
  REQUIRE(frame.ok());
  auto back = parse_request(*frame);
  REQUIRE(back.ok());
  CHECK(back->op == Op::kExec);
  CHECK(back->exec.argv == exec.exec.argv);
  CHECK(back->exec.env == exec.exec.env);
  CHECK(back->exec.cwd == "/sandbox");
  CHECK(back->exec.tty);

  Request update;
  update.op = Op::kPolicyUpdate;
  update.policy_toml = "version = 1\n";
  auto u = parse_request(*encode_request(update));
  REQUIRE(u.ok());
  CHECK(u->policy_toml == "version = 1\n");

  Request services;
  services.op = Op::kServicesUpdate;
  services.services = {{"attached", nlohmann::json::array()}, {"privacy", "any"}};
  auto sv = parse_request(*encode_request(services));
  REQUIRE(sv.ok());
  CHECK(sv->services == services.services);
  // Its services must be an object; what is in it is core/services' to judge.
  CHECK_FALSE(parse_request(R"({"op":"services_update","services":[1]})").ok());
  CHECK_FALSE(parse_request(R"({"op":"services_update"})").ok());

  for (Op op : {Op::kStatus, Op::kShutdown}) {
    Request r;
    r.op = op;
    auto parsed = parse_request(*encode_request(r));
    REQUIRE(parsed.ok());
    CHECK(parsed->op == op);
  }
}

TEST_CASE("control: replies carry data or an error with details") {
  Reply ok;
  ok.ok = true;
  ok.data = {{"name", "s1"}, {"agent_pid", 42}};
  auto a = parse_reply(encode_reply(ok));
  REQUIRE(a.ok());
  CHECK(a->ok);
  CHECK(a->data["agent_pid"] == 42);

  Reply bad;
  bad.error = "policy rejected";
  bad.details = {"p.toml:3:1: network_policies.x: unknown key"};
  auto b = parse_reply(encode_reply(bad));
  REQUIRE(b.ok());
  CHECK_FALSE(b->ok);
  CHECK(b->error == "policy rejected");
  CHECK(b->details == bad.details);

  // A reply never exceeds a frame, whatever it was asked to carry.
  Reply huge;
  huge.ok = true;
  huge.data = {{"blob", std::string(2 * kMaxFrame, 'x')}};
  const auto frame = encode_reply(huge);
  CHECK(frame.size() <= kMaxFrame);
  auto h = parse_reply(frame);
  REQUIRE(h.ok());
  CHECK_FALSE(h->ok);
}

TEST_CASE("control: garbage frames are refused with a reason") {
  const std::string deep(kMaxDepth + 1, '[');
  for (const std::string& frame : std::initializer_list<std::string>{
           "",
           "not json",
           "[]",
           "{}",
           R"({"op":"reboot"})",
           R"({"op":7})",
           R"({"op":"status","extra":1})",
           R"({"op":"policy_update"})",
           R"({"op":"policy_update","policy_toml":42})",
           R"({"op":"exec"})",
           R"({"op":"exec","argv":[]})",
           R"({"op":"exec","argv":"sh"})",
           R"({"op":"exec","argv":[1]})",
           R"({"op":"exec","argv":["sh"],"env":["NOEQUALS"]})",
           R"({"op":"exec","argv":["sh"],"env":["=x"]})",
           R"({"op":"exec","argv":["sh"],"cwd":"relative"})",
           R"({"op":"exec","argv":["sh"],"tty":"yes"})",
           R"({"op":"exec","argv":["a\u0000b"]})",
           R"({"op":"exec","argv":[["nested"]]})",
           "{\"op\":\"status\"," + deep + "}",
       }) {
    INFO(frame);
    auto r = parse_request(frame);
    CHECK_FALSE(r.ok());
  }
  // Size and count limits.
  CHECK_FALSE(parse_request(std::string(kMaxFrame + 1, ' ')).ok());
  std::string many = R"({"op":"exec","argv":[)";
  for (size_t i = 0; i <= kMaxArgs; ++i) many += std::string(i ? "," : "") + "\"a\"";
  many += "]}";
  CHECK_FALSE(parse_request(many).ok());
  const std::string long_arg =
      R"({"op":"exec","argv":[")" + std::string(kMaxArgBytes + 1, 'a') + R"("]})";
  CHECK_FALSE(parse_request(long_arg).ok());
  // Replies too.
  CHECK_FALSE(parse_reply(R"({"ok":"yes"})").ok());
  CHECK_FALSE(parse_reply(R"({"ok":false})").ok());
  CHECK_FALSE(parse_reply(R"({"ok":true,"data":[]})").ok());
  CHECK_FALSE(parse_reply(R"({"ok":true,"surprise":1})").ok());
  // Encoding refuses what parsing would.
  Request empty_exec;
  empty_exec.op = Op::kExec;
  CHECK_FALSE(encode_request(empty_exec).ok());
}

TEST_CASE("control: strings with brackets do not count as nesting") {
  Request r;
  r.op = Op::kPolicyUpdate;
  r.policy_toml = std::string(100, '[') + "\"\\" + std::string(100, '{');
  auto frame = encode_request(r);
  REQUIRE(frame.ok());
  auto back = parse_request(*frame);
  REQUIRE(back.ok());
  CHECK(back->policy_toml == r.policy_toml);
}
