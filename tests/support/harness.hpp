// Shared helpers for privileged tests: run processes with a deadline, temp dirs, test policies,
// and parsing of the probe programs' "CASE ok" / "CASE errno=ENAME" lines.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace openshell::testing {

struct Outcome {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string out;
  std::string err;
};

// Runs argv with stdin from /dev/null. Kills it (SIGKILL) after timeout_s: tests never hang.
Outcome run_process(const std::vector<std::string>& argv, int timeout_s = 60);

// Starts argv in the background; returns its pid (stdout/stderr to the given file or /dev/null).
pid_t spawn_process(const std::vector<std::string>& argv, const std::string& output_file = "");

// A directory under /tmp removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

std::string supervisor_bin();
std::string helper(const std::string& name);  // absolute path of a probe in tests/helpers
std::string policy_examples_dir();

// A policy with the system paths, the probes' directory, and `extra` TOML appended.
std::string test_policy(const std::string& extra_filesystem = "", const std::string& tail = "");

// A sandbox name unique to this test process.
std::string unique_name(const std::string& stem);

// "CASE ok" -> {CASE: "ok"}; "CASE errno=EPERM" -> {CASE: "EPERM"}; other lines ignored.
std::map<std::string, std::string> parse_cases(const std::string& output);

// Reads a whole file ("" if missing).
std::string read_text(const std::string& path);
bool path_exists(const std::string& path);

// Polls cond every 10 ms up to timeout_ms. For waiting on the system, never for timing claims.
template <typename F>
bool eventually(F cond, int timeout_ms = 10000);

}  // namespace openshell::testing

#include <time.h>

template <typename F>
bool openshell::testing::eventually(F cond, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    if (cond()) return true;
    timespec ts{0, 10 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  return cond();
}
