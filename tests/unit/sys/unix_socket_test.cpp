#include "sys/unix_socket.hpp"

#include "sys/file_util.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

using namespace openshell;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/osh-unix-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    ::unlink((path + "/s").c_str());
    ::unlink((path + "/file").c_str());
    ::rmdir(path.c_str());
  }
};

}  // namespace

TEST_CASE("unix_socket: frames keep their boundaries and descriptors travel with them") {
  int sp[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
  UniqueFd a(sp[0]), b(sp[1]);
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
  const int pass[2] = {r.get(), w.get()};
  REQUIRE(sys::send_message(a.get(), "one", 3, pass) == 0);
  REQUIRE(sys::send_message(a.get(), "two!", 4, {}) == 0);

  auto first = sys::receive_message(b.get(), 64, 2);
  REQUIRE(first.ok());
  REQUIRE(first->has_value());
  CHECK((*first)->frame == "one");
  REQUIRE((*first)->fds.size() == 2);
  // The received write end feeds the original read end: the same pipe.
  REQUIRE(::write((*first)->fds[1].get(), "x", 1) == 1);
  char c = 0;
  REQUIRE(::read(r.get(), &c, 1) == 1);
  CHECK(c == 'x');
  CHECK((::fcntl((*first)->fds[0].get(), F_GETFD) & FD_CLOEXEC) != 0);

  auto second = sys::receive_message(b.get(), 64, 2);
  REQUIRE(second.ok());
  CHECK((*second)->frame == "two!");
  CHECK((*second)->fds.empty());

  a.reset();
  auto closed = sys::receive_message(b.get(), 64, 2);
  REQUIRE(closed.ok());
  CHECK_FALSE(closed->has_value());
}

TEST_CASE("unix_socket: oversize frames and surplus descriptors are errors, nothing leaks") {
  int sp[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
  UniqueFd a(sp[0]), b(sp[1]);
  const std::string big(100, 'x');
  REQUIRE(sys::send_message(a.get(), big.data(), big.size(), {}) == 0);
  CHECK_FALSE(sys::receive_message(b.get(), 99, 0).ok());

  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
  const int pass[3] = {r.get(), w.get(), r.get()};
  REQUIRE(sys::send_message(a.get(), "m", 1, pass) == 0);
  CHECK_FALSE(sys::receive_message(b.get(), 64, 1).ok());
  // The three copies were closed: with ours closed too, the pipe's write side is gone.
  w.reset();
  char c = 0;
  CHECK(::read(r.get(), &c, 1) == 0);

  const int too_many[sys::kMaxPassedFds + 1] = {0, 0, 0, 0, 0};
  CHECK(sys::send_message(a.get(), "m", 1, too_many) == E2BIG);
}

namespace {

// listen_seqpacket(path) in a child process (a claim is per process): 0 if it got the path.
int listen_in_child(const std::string& path) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(sys::listen_seqpacket(path, 0600).ok() ? 0 : 1);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE("unix_socket: listen at a claimed path, refuse a live owner or a file") {
  TempDir dir;
  const std::string path = dir.path + "/s";
  {
    auto listener = sys::listen_seqpacket(path, 0600);
    REQUIRE(listener.ok());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    // A second server while the owner lives is refused, and the path stays the owner's.
    CHECK(listen_in_child(path) == 1);
    auto client = sys::connect_seqpacket(path);
    REQUIRE(client.ok());
    auto creds = sys::peer_credentials(client->get());
    REQUIRE(creds.ok());
    CHECK(creds->uid == ::getuid());
    CHECK(creds->pid == ::getpid());
  }
  // The owner went cleanly: socket and lock file are gone.
  CHECK(::access(path.c_str(), F_OK) != 0);
  CHECK(::access((path + ".lock").c_str(), F_OK) != 0);
  // Not a socket: refused, and left alone.
  const std::string file = dir.path + "/file";
  UniqueFd f(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  REQUIRE(f);
  CHECK_FALSE(sys::listen_seqpacket(file, 0600).ok());
  CHECK(::access(file.c_str(), F_OK) == 0);
  ::unlink((file + ".lock").c_str());
}

TEST_CASE("unix_socket: a dead owner's path is taken over though a child still holds its socket") {
  TempDir dir;
  const std::string path = dir.path + "/s";
  int hold[2];
  REQUIRE(::pipe2(hold, O_CLOEXEC) == 0);
  UniqueFd release(hold[1]);
  // The owner listens, forks a child that keeps a copy of the socket, and dies without cleanup.
  pid_t owner = ::fork();
  REQUIRE(owner >= 0);
  if (owner == 0) {
    auto listener = sys::listen_seqpacket(path, 0600);
    if (!listener) ::_exit(1);
    if (::fork() == 0) {
      char c;
      ::close(hold[1]);
      (void)!::read(hold[0], &c, 1);  // until the test lets go
      ::_exit(0);
    }
    ::_exit(0);  // no destructor: the files stay, as after kill -9
  }
  ::close(hold[0]);
  int status = 0;
  REQUIRE(::waitpid(owner, &status, 0) == owner);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  // The socket still accepts connections (the child's copy), but the path is free.
  CHECK(sys::connect_seqpacket(path).ok());
  auto listener = sys::listen_seqpacket(path, 0600);
  REQUIRE(listener.ok());
  auto client = sys::connect_seqpacket(path);
  REQUIRE(client.ok());
  auto creds = sys::peer_credentials(client->get());
  REQUIRE(creds.ok());
  CHECK(creds->pid == ::getpid());
  release.reset();
}

TEST_CASE("write_no_sigpipe: a gone reader is EPIPE, not a SIGPIPE; files still work") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  UniqueFd ours(pair[0]);
  ::close(pair[1]);
  CHECK_FALSE(sys::write_no_sigpipe(ours.get(), "exit 0\n"));  // and we are still here
  TempDir dir;
  const std::string path = dir.path + "/file";
  UniqueFd file(::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  REQUIRE(file);
  CHECK(sys::write_no_sigpipe(file.get(), "launched\n"));
  ::unlink(path.c_str());
}
