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
// concurrent writers' lines whole). Size-bounded: a line that would take the file past
// max_bytes first moves it to PATH.1 (replacing the older one), so the events on disk never
// exceed twice max_bytes.
class JsonlFileSink final : public EventSink {
 public:
  static constexpr uint64_t kDefaultMaxBytes = 8ULL << 20;

  static Result<std::unique_ptr<JsonlFileSink>> open(const std::string& path,
                                                     uint64_t max_bytes = kDefaultMaxBytes);
  void emit(const ocsf::Event& event) override;
  [[nodiscard]] uint64_t dropped() const { return dropped_; }

 private:
  JsonlFileSink(std::string path, UniqueFd fd, uint64_t size, uint64_t max_bytes)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size), max_bytes_(max_bytes) {}
  void rotate();
  std::mutex mu_;
  std::string path_;
  UniqueFd fd_;
  uint64_t size_;
  uint64_t max_bytes_;
  uint64_t dropped_ = 0;
};

// Sends every event to each of its sinks in turn.
class TeeSink final : public EventSink {
 public:
  void add(std::unique_ptr<EventSink> sink) { sinks_.push_back(std::move(sink)); }
  void emit(const ocsf::Event& event) override {
    for (auto& s : sinks_) s->emit(event);
  }

 private:
  std::vector<std::unique_ptr<EventSink>> sinks_;
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
