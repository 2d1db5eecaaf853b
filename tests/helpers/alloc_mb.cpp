// alloc_mb N : allocates N MiB in 1 MiB chunks and writes every page, printing
// "allocated=K" (MiB so far) every 16 MiB and "done" at the end, then exits 0. Tests run it
// past a cgroup memory.max and expect the OOM killer, so every line is flushed as it is
// printed: the last "allocated=" seen tells how far it got. A refused allocation prints
// "errno=ENOMEM" and exits 1.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "probe_output.hpp"

namespace {

using openshell::probe::errno_name;
using openshell::probe::parse_long;
using openshell::probe::usage_exit;

constexpr std::size_t kChunk = std::size_t{1024} * 1024;
constexpr long kReportEveryMb = 16;
constexpr long kMaxMb = 1024L * 1024L;  // 1 TiB: only a bound against typos

}  // namespace

int main(int argc, char** argv) {
  long total_mb = 0;
  if (argc != 2 || !parse_long(argv[1], 0, kMaxMb, &total_mb)) {
    usage_exit("alloc_mb N (MiB, 0..1048576)");
  }
  std::vector<void*> chunks;
  chunks.reserve(static_cast<std::size_t>(total_mb));
  for (long mb = 1; mb <= total_mb; ++mb) {
    void* chunk = std::malloc(kChunk);
    if (chunk == nullptr) {
      std::printf("errno=%s\n", errno_name(errno));
      std::fflush(stdout);
      return 1;
    }
    // A non-zero pattern, and the barrier below, so the compiler can neither turn this into
    // calloc nor drop the stores: every page must really be faulted in and charged.
    std::memset(chunk, 0xa5, kChunk);
    asm volatile("" : : "r"(chunk) : "memory");
    chunks.push_back(chunk);
    if (mb % kReportEveryMb == 0) {
      std::printf("allocated=%ld\n", mb);
      std::fflush(stdout);
    }
  }
  std::printf("done\n");
  std::fflush(stdout);
  return 0;
}
