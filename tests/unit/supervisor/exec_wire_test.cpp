#include "supervisor/launch/exec_wire.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

using namespace openshell::supervisor;

namespace {

struct Parsed {
  bool ok = false;
  ExecHeader header;
  std::vector<std::string> argv, envp;
  std::string cwd;
};

Parsed parse(std::string wire) {
  static char* argv[kExecMaxArgs + 1];
  static char* envp[kExecMaxArgs + 1];
  Parsed p;
  const char* cwd = nullptr;
  p.ok = parse_exec_request_in_child(wire.data(), wire.size(), &p.header, argv, envp, &cwd);
  if (!p.ok) return p;
  p.cwd = cwd;
  for (char** a = argv; *a != nullptr; ++a) p.argv.emplace_back(*a);
  for (char** e = envp; *e != nullptr; ++e) p.envp.emplace_back(*e);
  return p;
}

}  // namespace

TEST_CASE("exec wire: a request parses back in the child as it was sent") {
  auto p = parse(encode_exec_request(9, {"/bin/sh", "-c", "echo hi"}, {"A=1"}, "/tmp", true));
  REQUIRE(p.ok);
  CHECK(p.header.id == 9);
  CHECK(p.header.flags == kExecFlagTty);
  CHECK(p.argv == std::vector<std::string>{"/bin/sh", "-c", "echo hi"});
  CHECK(p.envp == std::vector<std::string>{"A=1"});
  CHECK(p.cwd == "/tmp");
  auto empty_cwd = parse(encode_exec_request(1, {"true"}, {}, "", false));
  REQUIRE(empty_cwd.ok);
  CHECK(empty_cwd.cwd.empty());
}

TEST_CASE("exec wire: what cannot be encoded is refused, and the child rejects malformed bytes") {
  CHECK(encode_exec_request(1, {}, {}, "", false).empty());
  CHECK(encode_exec_request(1, {std::string("a\0b", 3)}, {}, "", false).empty());
  CHECK(encode_exec_request(1, std::vector<std::string>(kExecMaxArgs + 1, "a"), {}, "", false)
            .empty());
  CHECK(encode_exec_request(1, {std::string(kExecRequestMax, 'a')}, {}, "", false).empty());

  const std::string good = encode_exec_request(3, {"a", "b"}, {"K=V"}, "/", false);
  // Every truncation fails (the last string loses its NUL, or a string is missing).
  for (size_t n = 0; n < good.size(); ++n) CHECK_FALSE(parse(good.substr(0, n)).ok);
  // Trailing bytes, a bad magic, counts beyond the limits.
  CHECK_FALSE(parse(good + "x").ok);
  std::string bad = good;
  bad[0] ^= 1;
  CHECK_FALSE(parse(bad).ok);
  ExecHeader h;
  std::memcpy(&h, good.data(), sizeof h);
  h.argc = kExecMaxArgs + 1;
  std::string many = good;
  std::memcpy(many.data(), &h, sizeof h);
  CHECK_FALSE(parse(many).ok);
  h.argc = 0;
  std::memcpy(many.data(), &h, sizeof h);
  CHECK_FALSE(parse(many).ok);
}
