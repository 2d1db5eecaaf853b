#include "openshelld/netns_spare.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <string>

#include "core/capture.hpp"
#include "core/log.hpp"
#include "sys/nft.hpp"

namespace openshell::daemon {

NetnsSpare::~NetnsSpare() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NetnsSpare::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { work(); });
}

UniqueFd NetnsSpare::take() {
  UniqueFd taken;
  {
    std::lock_guard lock(mu_);
    taken = std::move(spare_);
    wanted_ = true;
  }
  wake_.notify_one();
  return taken;
}

void NetnsSpare::work() {
  // Behind the supervisors that are starting (a spare is for the start after theirs). The
  // threads that make each namespace inherit this.
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  bool failed_before = false;
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || (wanted_ && !spare_); });
    if (stopping_) return;
    wanted_ = false;
    lock.unlock();
    auto made = sys::new_capture_netns(capture::kSandboxAddress, capture::ruleset());
    lock.lock();
    if (made) {
      spare_ = std::move(*made);
      failed_before = false;
    } else if (!failed_before) {
      // Tried again at the next take(); said once until it works.
      log::info("openshelld", "no spare network namespace (" + made.error().message() +
                                  "): supervisors make their own, a few ms slower");
      failed_before = true;
    }
  }
}

}  // namespace openshell::daemon
