#include "core/event_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace openshell {

namespace {

UniqueFd open_for_append(const std::string& path) {
  return UniqueFd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640));
}

}  // namespace

Result<std::unique_ptr<JsonlFileSink>> JsonlFileSink::open(const std::string& path,
                                                           uint64_t max_bytes) {
  UniqueFd fd = open_for_append(path);
  if (!fd) return Error::from_errno("opening event file " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("stat " + path);
  return std::unique_ptr<JsonlFileSink>(
      new JsonlFileSink(path, std::move(fd), static_cast<uint64_t>(st.st_size), max_bytes));
}

// The file goes to PATH.1 and a new one starts. If the new one cannot be opened, events keep
// going to the old descriptor (now PATH.1) rather than nowhere.
void JsonlFileSink::rotate() {
  const std::string old = path_ + ".1";
  if (::rename(path_.c_str(), old.c_str()) != 0) return;
  UniqueFd fresh = open_for_append(path_);
  if (!fresh) return;
  fd_ = std::move(fresh);
  size_ = 0;
}

void JsonlFileSink::emit(const ocsf::Event& event) {
  std::string line = event.to_json_line();
  line += '\n';
  std::lock_guard lock(mu_);
  if (size_ > 0 && size_ + line.size() > max_bytes_) rotate();
  ssize_t n = ::write(fd_.get(), line.data(), line.size());
  if (n > 0) size_ += static_cast<uint64_t>(n);
  if (n != static_cast<ssize_t>(line.size())) ++dropped_;
}

}  // namespace openshell
