#include "sys/journal.hpp"

#include <sys/uio.h>

#include <string>
#include <string_view>

#define SD_JOURNAL_SUPPRESS_LOCATION  // the file and line of this sink say nothing about the event
#include <systemd/sd-journal.h>

namespace openshell::sys {

int journal_priority(ocsf::Severity severity) {
  switch (severity) {
    case ocsf::Severity::kLow:
      return 5;  // notice
    case ocsf::Severity::kMedium:
      return 4;  // warning
    case ocsf::Severity::kHigh:
      return 3;  // err
    case ocsf::Severity::kCritical:
    case ocsf::Severity::kFatal:
      return 2;  // crit
    default:
      return 6;  // info
  }
}

void JournalSink::emit(const ocsf::Event& event) {
  const std::string fields[] = {
      "MESSAGE=" + event.sandbox + ": " + event.message +
          (event.status_detail.empty() ||
                   event.message.find(event.status_detail) != std::string::npos
               ? ""
               : " (" + event.status_detail + ")"),
      "PRIORITY=" + std::to_string(journal_priority(event.severity)),
      "SYSLOG_IDENTIFIER=openshell-supervisor",
      "OPENSHELL_SANDBOX=" + event.sandbox,
      "OCSF_CLASS_UID=" + std::to_string(static_cast<int>(event.class_uid)),
      "OCSF_ACTIVITY=" + event.activity_name,
      "OCSF_EVENT=" + event.to_json_line(),
  };
  iovec iov[std::size(fields)];
  for (size_t i = 0; i < std::size(fields); ++i)
    iov[i] = {const_cast<char*>(fields[i].data()), fields[i].size()};
  if (sd_journal_sendv(iov, static_cast<int>(std::size(fields))) < 0) ++dropped_;
}

}  // namespace openshell::sys
