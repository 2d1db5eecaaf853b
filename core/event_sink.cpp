#include "core/event_sink.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace openshell {

Result<std::unique_ptr<JsonlFileSink>> JsonlFileSink::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) return Error::from_errno("opening event file " + path);
  return std::unique_ptr<JsonlFileSink>(new JsonlFileSink(UniqueFd(fd)));
}

void JsonlFileSink::emit(const ocsf::Event& event) {
  std::string line = event.to_json_line();
  line += '\n';
  std::lock_guard lock(mu_);
  ssize_t n = ::write(fd_.get(), line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) ++dropped_;
}

}  // namespace openshell
