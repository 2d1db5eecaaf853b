// OCSF events to the systemd journal (DESIGN.md §8), beside the JSONL file: one journal entry
// per event with the fields `journalctl OPENSHELL_SANDBOX=NAME` and `OCSF_CLASS_UID=4001`
// select on, and the whole event in OCSF_EVENT. Where no journald listens, sends fail quietly
// and are counted, like any sink's losses.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/event_sink.hpp"

namespace openshell::sys {

class JournalSink final : public EventSink {
 public:
  void emit(const ocsf::Event& event) override;
  [[nodiscard]] uint64_t dropped() const { return dropped_; }

 private:
  std::atomic<uint64_t> dropped_{0};
};

// syslog priority for an OCSF severity: informational 6 ... critical and fatal 2.
int journal_priority(ocsf::Severity severity);

}  // namespace openshell::sys
