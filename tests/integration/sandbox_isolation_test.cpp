// What a process inside a sandbox is and sees: identity, capabilities, filesystem, network.
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/support/harness.hpp"

using namespace openshell::testing;

namespace {

Outcome sandboxed(const std::string& policy_file, const std::vector<std::string>& cmd,
                  const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {supervisor_bin(), "run",    "--policy-file",
                                   policy_file,      "--name", unique_name("iso")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.emplace_back("--");
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  return run_process(argv);
}

}  // namespace

TEST_CASE("the agent runs as uid 1000 with no capabilities, no_new_privs and seccomp") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  auto ids = sandboxed(policy, {helper("print_ids")});
  REQUIRE(ids.exit_code == 0);
  CHECK(ids.out.find("uid=1000 euid=1000 gid=1000 egid=1000") != std::string::npos);
  CHECK(ids.out.find("cwd=/sandbox") != std::string::npos);

  auto status = sandboxed(policy, {"/bin/cat", "/proc/self/status"});
  REQUIRE(status.exit_code == 0);
  CHECK(status.out.find("CapEff:\t0000000000000000") != std::string::npos);
  CHECK(status.out.find("CapBnd:\t0000000000000000") != std::string::npos);
  CHECK(status.out.find("CapPrm:\t0000000000000000") != std::string::npos);
  CHECK(status.out.find("CapAmb:\t0000000000000000") != std::string::npos);
  CHECK(status.out.find("NoNewPrivs:\t1") != std::string::npos);
  CHECK(status.out.find("Seccomp:\t2") != std::string::npos);

  auto limits = sandboxed(policy, {"/bin/cat", "/proc/self/limits"});
  CHECK(limits.out.find("Max core file size        0                    0") != std::string::npos);
}

TEST_CASE("unlisted host paths do not exist and read-only paths cannot be written") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  auto r = sandboxed(policy, {helper("try_open"),
                              "r",
                              "/root",
                              "list",
                              "/home",
                              "r",
                              "/var/log",
                              "r",
                              "/etc/hostname",
                              "create",
                              "/usr/openshell-probe",
                              "create",
                              "/etc/openshell-probe",
                              "mkdir",
                              "/bin/openshell-probe",
                              "create",
                              "/openshell-probe",
                              "r",
                              "/etc/passwd",
                              "list",
                              "/usr/bin"});
  REQUIRE(r.exit_code == 0);
  auto cases = parse_cases(r.out);
  CHECK(cases["r /root"] == "ENOENT");
  CHECK(cases["list /home"] == "ENOENT");
  CHECK(cases["r /var/log"] == "ENOENT");
  CHECK(cases["r /etc/hostname"] == "ok");  // /etc is listed read-only
  CHECK(cases["create /usr/openshell-probe"] == "EROFS");
  CHECK(cases["create /etc/openshell-probe"] == "EROFS");
  CHECK(cases["mkdir /bin/openshell-probe"] == "EROFS");
  CHECK(cases["create /openshell-probe"] == "EROFS");
  CHECK(cases["r /etc/passwd"] == "ok");
  CHECK(cases["list /usr/bin"] == "ok");
  CHECK_FALSE(path_exists("/usr/openshell-probe"));
}

TEST_CASE("the sandbox has generated identity files, not the host's") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  auto r = sandboxed(policy, {"/bin/cat", "/etc/passwd", "/etc/group"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("sandbox:x:1000:1000:sandbox:/sandbox:/bin/sh") != std::string::npos);
  CHECK(r.out.find("sandbox:x:1000:") != std::string::npos);
  // The host's passwd lists daemon accounts; ours does not.
  CHECK(r.out.find("daemon:") == std::string::npos);
}

// Ubuntu's /etc/resolv.conf is a symlink into /run/systemd/resolve, and some hosts have no
// /etc/hosts: neither can take a bind in a read-only bind of the host's /etc. The supervisor
// runs here in a mount namespace of the test's own, where /etc is a copy made that way.
TEST_CASE("generated /etc files replace a host's symlink and fill a missing name") {
  TempDir dir;
  // A writable bind beneath /etc, sorted before the generated names: it must stay in view. The
  // host's /etc/passwd, listed too, stays out: the generated one takes its place.
  auto policy =
      dir.write("p.toml", test_policy(", \"/etc/passwd\"", "read_write = [\"/etc/aaa-probe\"]\n"));
  TempDir etc;
  REQUIRE(run_process({"/bin/cp", "-a", "/etc/.", etc.path()}).exit_code == 0);
  REQUIRE(::mkdir((etc.path() + "/aaa-probe").c_str(), 0777) == 0);
  REQUIRE(::chmod((etc.path() + "/aaa-probe").c_str(), 0777) == 0);
  REQUIRE(::unlink((etc.path() + "/hosts").c_str()) == 0);
  (void)::unlink((etc.path() + "/resolv.conf").c_str());
  REQUIRE(::symlink("../run/systemd/resolve/stub-resolv.conf",
                    (etc.path() + "/resolv.conf").c_str()) == 0);
  auto under_that_etc = [&](const std::vector<std::string>& cmd) {
    std::vector<std::string> argv = {"/usr/bin/unshare",
                                     "--mount",
                                     "--propagation",
                                     "private",
                                     "/bin/sh",
                                     "-c",
                                     "mount --bind \"$0\" /etc && exec \"$@\"",
                                     etc.path(),
                                     supervisor_bin(),
                                     "run",
                                     "--policy-file",
                                     policy,
                                     "--name",
                                     unique_name("etc"),
                                     "--"};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return run_process(argv);
  };
  auto r = under_that_etc({helper("try_open"), "r", "/etc/hosts", "r", "/etc/resolv.conf", "r",
                           "/etc/hostname", "create", "/etc/openshell-probe", "create",
                           "/etc/aaa-probe/written"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto cases = parse_cases(r.out);
  CHECK(cases["r /etc/hosts"] == "ok");
  CHECK(cases["r /etc/resolv.conf"] == "ok");
  CHECK(cases["r /etc/hostname"] == "ok");  // the host's names are still there, under ours
  CHECK(cases["create /etc/openshell-probe"] == "EROFS");
  CHECK(cases["create /etc/aaa-probe/written"] == "ok");  // the writable bind, not the overlay
  auto cat = under_that_etc({"/bin/cat", "/etc/resolv.conf", "/etc/hosts", "/etc/passwd"});
  REQUIRE(cat.exit_code == 0);
  CHECK(cat.out.find("nameserver 10.200.0.1") != std::string::npos);
  CHECK(cat.out.find("127.0.0.1\tlocalhost") != std::string::npos);
  CHECK(cat.out.find("sandbox:x:1000:1000:") != std::string::npos);
  CHECK_FALSE(path_exists(etc.path() + "/hosts"));  // nothing was written to the host's side
}

TEST_CASE("/tmp is private and writable, /sandbox is the writable workdir") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  TempDir marker_dir;  // a file in the host's /tmp
  std::string marker = marker_dir.write("marker", "host");
  const std::string inside_name = "/tmp/openshell-inside-" + std::to_string(getpid());
  auto r = sandboxed(policy, {helper("try_open"), "r", marker, "create", inside_name, "create",
                              "/dev/shm/x", "create", "/sandbox/x", "mkdir", "/sandbox/d"});
  REQUIRE(r.exit_code == 0);
  auto cases = parse_cases(r.out);
  CHECK(cases["r " + marker] == "ENOENT");  // the host's /tmp is not there
  CHECK(cases["create " + inside_name] == "ok");
  CHECK(cases["create /dev/shm/x"] == "ok");
  CHECK(cases["create /sandbox/x"] == "ok");
  CHECK(cases["mkdir /sandbox/d"] == "ok");
  CHECK_FALSE(path_exists(inside_name));  // and what it wrote did not land in the host's /tmp
}

TEST_CASE("--workdir is mounted at /sandbox and files written there belong to its owner") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  TempDir work;
  REQUIRE(chown(work.path().c_str(), 4242, 4242) == 0);
  work.write("input.txt", "from the host\n");
  auto r =
      sandboxed(policy, {"/bin/sh", "-c", "cat /sandbox/input.txt && echo out > /sandbox/out.txt"},
                {"--workdir", work.path()});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "from the host\n");
  struct stat st;
  REQUIRE(stat((work.path() + "/out.txt").c_str(), &st) == 0);
  CHECK(st.st_uid == 4242);
  CHECK(st.st_gid == 4242);
}

TEST_CASE("a root-owned --workdir is refused with a reason") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  TempDir work;
  auto r = sandboxed(policy, {"/bin/true"}, {"--workdir", work.path()});
  CHECK(r.exit_code == 125);
  CHECK(r.err.find("owned by root") != std::string::npos);
}

TEST_CASE("outbound traffic is captured or refused at once; loopback works") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  auto probe = [&](std::vector<std::string> cmd) {
    auto r = sandboxed(policy, cmd);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return parse_cases(r.out);
  };
  // TCP to any address is redirected to the supervisor's proxy port: with nothing allowed
  // there, the kernel resets it. A refusal, not a timeout: the agent learns at once.
  CHECK(probe({helper("try_connect"), "198.51.100.1", "80", "5000"})["connect 198.51.100.1:80"] ==
        "ECONNREFUSED");
  CHECK(probe({helper("try_connect"), "2001:db8::1", "443", "5000"})["connect 2001:db8::1:443"] ==
        "ECONNREFUSED");
  // UDP other than DNS is refused at send time; DNS goes to the sandbox's own resolver port.
  CHECK(probe({helper("try_udp"), "198.51.100.1", "123", "2000"})["udp 198.51.100.1:123"] ==
        "EPERM");
  CHECK(probe({helper("try_udp"), "2001:db8::1", "53", "2000"})["udp 2001:db8::1:53"] == "EPERM");
  // DNS to an outside server is answered, if at all, by the sandbox's own policy DNS; this
  // probe's datagram is not a query, so nothing answers it.
  CHECK(probe({helper("try_udp"), "198.51.100.1", "53", "1000"})["udp 198.51.100.1:53"] ==
        "ETIMEDOUT");
  // Loopback is up: nothing listens on port 1, so the kernel refuses (a down lo would not).
  CHECK(probe({helper("try_connect"), "127.0.0.1", "1", "5000"})["connect 127.0.0.1:1"] ==
        "ECONNREFUSED");
  CHECK(probe({helper("try_connect"), "::1", "1", "5000"})["connect ::1:1"] == "ECONNREFUSED");
}

TEST_CASE("the sandbox's network configuration is its own, not the host's") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  auto before = run_process({"/usr/sbin/ip", "-o", "addr"});
  auto r = sandboxed(policy, {"/bin/cat", "/proc/net/route", "/proc/net/if_inet6"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("lo\t00000000") != std::string::npos);  // the default route via lo
  auto after = run_process({"/usr/sbin/ip", "-o", "addr"});
  CHECK(before.out == after.out);
  CHECK(after.out.find("10.200.0.1") == std::string::npos);
}

TEST_CASE("the agent's environment is clean apart from --env") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  setenv("OPENSHELL_TEST_SECRET", "must-not-leak", 1);
  auto r = sandboxed(policy, {"/usr/bin/env"}, {"--env", "FOO=bar", "--env", "HOME=/tmp"});
  unsetenv("OPENSHELL_TEST_SECRET");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("must-not-leak") == std::string::npos);
  CHECK(r.out.find("FOO=bar\n") != std::string::npos);
  CHECK(r.out.find("HOME=/tmp\n") != std::string::npos);
  CHECK(r.out.find("HOME=/sandbox") == std::string::npos);
  CHECK(r.out.find("USER=sandbox\n") != std::string::npos);
}

// Issue 13.10: pid 1 in the sandbox is a copy of the supervisor, whose command line held host
// paths, the control socket and the events file; ps aux and /proc/1/cmdline showed them.
TEST_CASE("nothing of the supervisor's command line is visible inside") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  const std::string events = dir.path() + "/events-file-name.jsonl";
  const std::string control = dir.path() + "/control-socket-name.sock";
  auto r = sandboxed(policy,
                     {"/bin/sh", "-c",
                      "tr '\\0' '|' < /proc/1/cmdline; echo; for p in /proc/[0-9]*; do "
                      "tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"},
                     {"--events", events, "--control", control});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.rfind("openshell-init|", 0) == 0);
  for (const std::string& secret : {dir.path(), std::string("control-socket-name"),
                                    std::string("events-file-name"), std::string("--policy-file"),
                                    std::string("openshell-supervisor")}) {
    INFO(secret);
    CHECK(r.out.find(secret) == std::string::npos);
  }
}

// Issue 15.1: each sandbox trusts a CA of its own: /etc/openshell-tls (the CA alone, and the
// host's roots with it) read-only, and the environment that points TLS clients there. Its key
// exists only in the supervisor's memory.
TEST_CASE("the sandbox trusts a CA of its own: /etc/openshell-tls and the environment") {
  TempDir dir;
  const std::string script =
      "cat /etc/openshell-tls/openshell-ca.pem; echo ==; cat /etc/openshell-tls/ca-bundle.pem; "
      "echo ==; env";
  for (const std::string& extra : {std::string(), std::string("no /etc")}) {
    INFO(extra);
    // With the host's /etc bound read-only (the files come in an overlay layer), and without
    // (they are made on the sandbox's own root).
    const std::string policy =
        extra.empty() ? dir.write("p.toml", test_policy())
                      : dir.write("q.toml", "version = 1\n[filesystem_policy]\nread_only = "
                                            "[\"/usr\", \"/lib\", \"/lib64\", \"/bin\", \"" +
                                                std::string(OPENSHELL_HELPERS_DIR) + "\"]\n");
    auto a = sandboxed(policy, {"/bin/sh", "-c", script});
    auto b = sandboxed(policy, {"/bin/sh", "-c", script});
    INFO(a.err);
    REQUIRE(a.exit_code == 0);
    REQUIRE(b.exit_code == 0);
    const auto first = a.out.find("\n==\n");
    const auto second = a.out.find("\n==\n", first + 4);
    REQUIRE(second != std::string::npos);
    const std::string ca = a.out.substr(0, first + 1);
    const std::string bundle = a.out.substr(first + 4, second + 1 - (first + 4));
    const std::string env = a.out.substr(second + 4);
    CHECK(ca.starts_with("-----BEGIN CERTIFICATE-----\n"));
    CHECK(ca.find("PRIVATE KEY") == std::string::npos);
    CHECK(b.out.substr(0, b.out.find("\n==\n") + 1) != ca);  // two sandboxes, two CAs
    // The CA itself: a CA certificate naming openshell.
    BIO* bio = BIO_new_mem_buf(ca.data(), static_cast<int>(ca.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    REQUIRE(cert != nullptr);
    CHECK(X509_check_ca(cert) == 1);
    char subject[256];
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
    CHECK(std::string(subject).find("openshell sandbox CA (iso-") != std::string::npos);
    X509_free(cert);
    // The bundle: the host's roots, then the CA.
    CHECK(bundle.ends_with(ca));
    const auto host_roots = read_text("/etc/ssl/certs/ca-certificates.crt");
    if (!host_roots.empty()) CHECK(bundle.starts_with(host_roots.substr(0, 200)));
    for (const char* var : {"SSL_CERT_FILE=", "REQUESTS_CA_BUNDLE=", "CURL_CA_BUNDLE=",
                            "GIT_SSL_CAINFO=", "PIP_CERT="})
      CHECK(env.find(std::string("\n") + var + "/etc/openshell-tls/ca-bundle.pem\n") !=
            std::string::npos);
    CHECK(env.find("\nNODE_EXTRA_CA_CERTS=/etc/openshell-tls/openshell-ca.pem\n") !=
          std::string::npos);
    // Nothing in there is the agent's to change.
    auto w = sandboxed(policy, {helper("try_open"), "w", "/etc/openshell-tls/ca-bundle.pem",
                                "create", "/etc/openshell-tls/extra.pem"});
    auto cases = parse_cases(w.out);
    for (const char* c : {"w /etc/openshell-tls/ca-bundle.pem", "create /etc/openshell-tls/extra.pem"}) {
      INFO(c);
      CHECK((cases[c] == "EROFS" || cases[c] == "EACCES"));
    }
  }
}
