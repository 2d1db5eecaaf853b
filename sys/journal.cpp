#include "sys/journal.hpp"

#include <dlfcn.h>
#include <sys/uio.h>

#include <string>
#include <string_view>

namespace openshell::sys {
namespace {

// libsystemd is loaded when the first event goes to the journal, not linked: a supervisor
// without --journal (no journald on the host, or standalone) then maps neither it nor what it
// pulls in (gcrypt, lzma, zstd, lz4) — about 1 MiB of RSS and a fifth of the loader's work at
// every sandbox start. sd_journal_sendv is libsystemd's own; nothing of the protocol is ours.
using SendV = int (*)(const struct iovec*, int);

SendV journal_sendv() {
  static const SendV sendv = [] {
    void* lib = ::dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    return lib == nullptr ? nullptr : reinterpret_cast<SendV>(::dlsym(lib, "sd_journal_sendv"));
  }();
  return sendv;
}

}  // namespace

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
  const SendV sendv = journal_sendv();
  if (sendv == nullptr || sendv(iov, static_cast<int>(std::size(fields))) < 0) ++dropped_;
}

}  // namespace openshell::sys
