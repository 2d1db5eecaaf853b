// A thread pool whose threads start on first use. Name resolution blocks and so runs on pool
// threads, but most sandboxes resolve little (and the proxy's answers are cached): starting
// the threads eagerly cost every sandbox start and stop a dozen thread creations and joins.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <mutex>
#include <optional>

namespace openshell::supervisor::proxy {

class LazyPool {
 public:
  explicit LazyPool(size_t threads) : threads_(threads == 0 ? 1 : threads) {}
  ~LazyPool() { join(); }
  LazyPool(const LazyPool&) = delete;
  LazyPool& operator=(const LazyPool&) = delete;

  // The pool's executor, starting its threads the first time. Thread-safe. After join(), work
  // posted here never runs.
  boost::asio::thread_pool::executor_type executor() {
    std::lock_guard lock(mu_);
    if (!pool_) {
      pool_.emplace(threads_);
      if (joined_) pool_->stop();
    }
    return pool_->get_executor();
  }

  // Waits for work already running (none may be added meanwhile that should still run).
  void join() {
    boost::asio::thread_pool* pool = nullptr;
    {
      std::lock_guard lock(mu_);
      joined_ = true;
      if (pool_) pool = &*pool_;  // never replaced once made: the pointer stays good
    }
    if (pool != nullptr) pool->join();
  }

  // Stops the threads after their current work, dropping what is queued, then joins.
  void stop() {
    {
      std::lock_guard lock(mu_);
      joined_ = true;
      if (pool_) pool_->stop();
    }
    join();
  }

 private:
  std::mutex mu_;
  size_t threads_;
  bool joined_ = false;
  std::optional<boost::asio::thread_pool> pool_;
};

}  // namespace openshell::supervisor::proxy
