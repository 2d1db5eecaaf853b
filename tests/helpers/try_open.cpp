// try_open MODE PATH [MODE PATH]... : attempts filesystem accesses and prints, per pair,
// "MODE PATH ok" or "MODE PATH errno=ENAME".
//
//   r       open O_RDONLY, and read one byte if PATH is a regular file
//   w       open O_WRONLY without creating or truncating; nothing is written
//   create  open O_CREAT|O_EXCL|O_WRONLY 0644, write "x", then unlink it again
//   mkdir   mkdir 0755, then rmdir it again
//   list    opendir + readdir to the end
//   exec    execve PATH (argv[0] = PATH) in a forked child; ok once the exec succeeded,
//           whatever the program then does. stdio of the child is /dev/null.
//
// create and mkdir undo themselves so repeated runs and later cases see the same tree; a
// failed undo (a policy may allow creating but not removing) is noted on stderr only.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "probe_output.hpp"

extern char** environ;

namespace {

using openshell::probe::print_result;
using openshell::probe::usage_exit;

constexpr const char* kUsage =
    "try_open MODE PATH [MODE PATH]... (MODE: r w create mkdir list exec)";

// A program that execs fine but never ends must not hang the probe.
constexpr int kExecWaitMs = 10000;

int try_read(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd == -1) return errno;
  int err = 0;
  struct stat st {};
  if (fstat(fd, &st) == -1) {
    err = errno;
  } else if (S_ISREG(st.st_mode)) {
    // Landlock and LSMs may allow the open yet refuse the read, so read too.
    char byte = 0;
    if (read(fd, &byte, 1) == -1) err = errno;
  }
  close(fd);
  return err;
}

int try_write(const char* path) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd == -1) return errno;
  close(fd);
  return 0;
}

int try_create(const char* path) {
  const int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd == -1) return errno;
  int err = 0;
  if (write(fd, "x", 1) == -1) err = errno;
  close(fd);
  if (unlink(path) == -1) {
    std::fprintf(stderr, "try_open: note: created %s but could not unlink it: %s\n", path,
                 strerrorname_np(errno));
  }
  return err;
}

int try_mkdir(const char* path) {
  if (mkdir(path, 0755) == -1) return errno;
  if (rmdir(path) == -1) {
    std::fprintf(stderr, "try_open: note: made %s but could not remove it: %s\n", path,
                 strerrorname_np(errno));
  }
  return 0;
}

int try_list(const char* path) {
  DIR* dir = opendir(path);
  if (dir == nullptr) return errno;
  int err = 0;
  for (;;) {
    errno = 0;
    if (readdir(dir) == nullptr) {
      err = errno;  // 0 at the end of the directory
      break;
    }
  }
  closedir(dir);
  return err;
}

void sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

int try_exec(const char* path) {
  int pipe_fds[2];
  // CLOEXEC: a successful exec closes the write end, so the parent reads EOF; a failed one
  // leaves it open for the child to report its errno.
  if (pipe2(pipe_fds, O_CLOEXEC) == -1) return errno;
  const pid_t pid = fork();
  if (pid == -1) {
    const int err = errno;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return err;
  }
  if (pid == 0) {
    close(pipe_fds[0]);
    // Keep the program's output out of the lines tests parse.
    const int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd != -1) {
      dup2(null_fd, STDIN_FILENO);
      dup2(null_fd, STDOUT_FILENO);
      dup2(null_fd, STDERR_FILENO);
    }
    char* const argv[] = {const_cast<char*>(path), nullptr};
    execve(path, argv, environ);
    const int exec_errno = errno;
    (void)!write(pipe_fds[1], &exec_errno, sizeof exec_errno);
    _exit(127);
  }
  close(pipe_fds[1]);
  int exec_errno = 0;
  ssize_t got = 0;
  do {
    got = read(pipe_fds[0], &exec_errno, sizeof exec_errno);
  } while (got == -1 && errno == EINTR);
  close(pipe_fds[0]);
  if (got != static_cast<ssize_t>(sizeof exec_errno)) exec_errno = 0;  // EOF: exec succeeded

  int status = 0;
  for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited += 10) {
    if (waited >= kExecWaitMs) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    sleep_ms(10);
  }
  return exec_errno;
}

int attempt(const char* mode, const char* path) {
  if (std::strcmp(mode, "r") == 0) return try_read(path);
  if (std::strcmp(mode, "w") == 0) return try_write(path);
  if (std::strcmp(mode, "create") == 0) return try_create(path);
  if (std::strcmp(mode, "mkdir") == 0) return try_mkdir(path);
  if (std::strcmp(mode, "list") == 0) return try_list(path);
  return try_exec(path);  // "exec"; main() validated the mode
}

bool valid_mode(const char* mode) {
  for (const char* known : {"r", "w", "create", "mkdir", "list", "exec"}) {
    if (std::strcmp(mode, known) == 0) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || (argc - 1) % 2 != 0) usage_exit(kUsage);
  for (int i = 1; i < argc; i += 2) {
    if (!valid_mode(argv[i]) || argv[i + 1][0] == '\0') usage_exit(kUsage);
  }
  for (int i = 1; i < argc; i += 2) {
    const int err = attempt(argv[i], argv[i + 1]);
    const std::string what = std::string(argv[i]) + ' ' + argv[i + 1];
    print_result(what.c_str(), err);
  }
  return 0;
}
