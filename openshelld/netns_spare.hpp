// One network namespace made ready for the next sandbox, so that the supervisor the direct
// driver starts skips the longest part of its start: loading libnftables and the first commit
// (~6 ms of a ~25 ms start on the development VM, bench/README.md). The namespace is what the
// supervisor would have made (core/capture.hpp through sys::new_capture_netns); it is made on a
// thread of our own at low priority, and again after each take(), so a start never waits for
// one: without a spare ready, the supervisor makes its own.
//
// It also keeps the kernel's netfilter hooks of the sandboxes' kinds (NAT, filter, connection
// tracking on output) switched on while no sandbox runs. The kernel switches a kind of hook on
// and off for all namespaces at once by patching its own code (static keys), an interrupt to
// every CPU; without a namespace holding them, on a host with no NAT of its own, every
// sandbox's start and end did both (perf: ~4% of a start's CPU time). The spare has no part in
// the host's network.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/unique_fd.hpp"

namespace openshell::daemon {

class NetnsSpare {
 public:
  NetnsSpare() = default;
  NetnsSpare(const NetnsSpare&) = delete;
  NetnsSpare& operator=(const NetnsSpare&) = delete;
  ~NetnsSpare();

  // Starts making the first spare.
  void start();
  // The spare if one is ready (the next is made in the background), else an empty descriptor.
  UniqueFd take();

 private:
  void work();

  std::mutex mu_;
  std::condition_variable wake_;
  UniqueFd spare_;
  bool wanted_ = true;  // make one (again): none is ready, and the last try did not fail
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace openshell::daemon
