// Where OCSF events go. Emitting never fails the caller: a sink that cannot write counts the
// loss and keeps going (security decisions must not hinge on disk space).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/ocsf.hpp"
#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell {

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void emit(const ocsf::Event& event) = 0;
};

// Discards everything (no --events given).
class NullSink final : public EventSink {
 public:
  void emit(const ocsf::Event&) override {}
};

// Appends one JSON object per line to a file, one write(2) per event (O_APPEND keeps
// concurrent writers' lines whole).
class JsonlFileSink final : public EventSink {
 public:
  static Result<std::unique_ptr<JsonlFileSink>> open(const std::string& path);
  void emit(const ocsf::Event& event) override;
  [[nodiscard]] uint64_t dropped() const { return dropped_; }

 private:
  explicit JsonlFileSink(UniqueFd fd) : fd_(std::move(fd)) {}
  std::mutex mu_;
  UniqueFd fd_;
  uint64_t dropped_ = 0;
};

// Keeps events in memory (tests).
class MemorySink final : public EventSink {
 public:
  void emit(const ocsf::Event& event) override {
    std::lock_guard lock(mu_);
    events_.push_back(event);
  }
  std::vector<ocsf::Event> events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::vector<ocsf::Event> events_;
};

}  // namespace openshell
