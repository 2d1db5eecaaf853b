// start_latency: wall time from posix_spawn to waitpid of one command, repeated.
//
//   start_latency [--runs N] [--warmup W] [--label NAME] -- CMD [ARGS...]
//
// Runs CMD W times unmeasured (default 3: page cache, dynamic loader, first cgroup creation),
// then N times measured (default 50), with stdin/stdout/stderr on /dev/null, and prints one
// line of key=value pairs that bench/run.sh turns into a table:
//
//   label=NAME runs=N median_ms=1.234 p95_ms=1.456 min_ms=1.100 max_ms=2.000 mean_ms=1.250
//
// A run that cannot be spawned, or whose command does not exit 0, stops the benchmark with
// exit status 1: the timing of a failing sandbox says nothing about a working one.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr const char* kUsage =
    "usage: start_latency [--runs N] [--warmup W] [--label NAME] -- CMD [ARGS...]\n";
constexpr int kExitUsage = 2;

struct Options {
  long runs = 50;
  long warmup = 3;
  std::string label;
  std::vector<char*> command;  // null-terminated argv for posix_spawnp
};

[[noreturn]] void usage_exit() {
  std::fputs(kUsage, stderr);
  std::exit(kExitUsage);
}

long parse_count(const char* text, long min, long max) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) usage_exit();
  return value;
}

Options parse_options(int argc, char** argv) {
  Options opts;
  int i = 1;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--runs") == 0 && has_value) {
      opts.runs = parse_count(argv[++i], 1, 1000000);
    } else if (std::strcmp(argv[i], "--warmup") == 0 && has_value) {
      opts.warmup = parse_count(argv[++i], 0, 1000000);
    } else if (std::strcmp(argv[i], "--label") == 0 && has_value) {
      opts.label = argv[++i];
    } else {
      usage_exit();
    }
  }
  if (i + 1 >= argc) usage_exit();  // no "--" or nothing after it
  opts.command.assign(argv + i + 1, argv + argc);
  opts.command.push_back(nullptr);
  if (opts.label.empty()) opts.label = opts.command[0];
  return opts;
}

double now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// One spawn-to-reap cycle; returns the elapsed milliseconds, or a negative value on failure
// after printing why.
double run_once(const Options& opts, const posix_spawn_file_actions_t& actions) {
  const double start = now_ms();
  pid_t pid = 0;
  const int spawn_err =
      posix_spawnp(&pid, opts.command[0], &actions, nullptr, opts.command.data(), environ);
  if (spawn_err != 0) {
    std::fprintf(stderr, "start_latency: cannot spawn %s: %s\n", opts.command[0],
                 std::strerror(spawn_err));
    return -1;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) == -1) {
    if (errno != EINTR) {
      std::perror("start_latency: waitpid");
      return -1;
    }
  }
  const double elapsed = now_ms() - start;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (WIFSIGNALED(status)) {
      std::fprintf(stderr, "start_latency: %s killed by signal %d\n", opts.command[0],
                   WTERMSIG(status));
    } else {
      std::fprintf(stderr, "start_latency: %s exited with status %d\n", opts.command[0],
                   WEXITSTATUS(status));
    }
    return -1;
  }
  return elapsed;
}

// Nearest-rank percentile of sorted samples, p in (0, 100].
double percentile(const std::vector<double>& sorted, double p) {
  const auto rank =
      static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::max<std::size_t>(rank, 1) - 1];
}

double median(const std::vector<double>& sorted) {
  const std::size_t n = sorted.size();
  return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opts = parse_options(argc, argv);

  // The command's output would only measure the terminal; /dev/null measures the sandbox.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);

  for (long i = 0; i < opts.warmup; ++i) {
    if (run_once(opts, actions) < 0) return 1;
  }
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(opts.runs));
  for (long i = 0; i < opts.runs; ++i) {
    const double ms = run_once(opts, actions);
    if (ms < 0) return 1;
    samples.push_back(ms);
  }
  posix_spawn_file_actions_destroy(&actions);

  std::sort(samples.begin(), samples.end());
  double sum = 0;
  for (const double ms : samples) sum += ms;
  std::printf("label=%s runs=%zu median_ms=%.3f p95_ms=%.3f min_ms=%.3f max_ms=%.3f mean_ms=%.3f\n",
              opts.label.c_str(), samples.size(), median(samples), percentile(samples, 95.0),
              samples.front(), samples.back(), sum / static_cast<double>(samples.size()));
  return 0;
}
