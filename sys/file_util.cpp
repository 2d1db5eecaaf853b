#include "sys/file_util.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/unique_fd.hpp"

namespace openshell::sys {

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("opening " + path);
  std::string out;
  char buf[4096];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("reading " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  if (out.size() > max_bytes) out.resize(max_bytes);
  return out;
}

Status write_file(const std::string& path, std::string_view content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("opening " + path);
  ssize_t n;
  do {
    n = ::write(fd.get(), content.data(), content.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::from_errno("writing '" + std::string(content) + "' to " + path);
  if (static_cast<size_t>(n) != content.size()) return Error::invalid("short write to " + path);
  return {};
}

bool write_no_sigpipe(int fd, std::string_view data) {
  ssize_t n;
  do {
    n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == ENOTSOCK) {
    do {
      n = ::write(fd, data.data(), data.size());
    } while (n < 0 && errno == EINTR);
  }
  return n == static_cast<ssize_t>(data.size());
}

Status write_file_atomic(const std::string& path, std::string_view content, mode_t mode,
                         Durability durability) {
  const bool sync = durability == Durability::kPowerLoss;
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return Error::from_errno("creating " + tmp);
  auto fail = [&](const std::string& what) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Error::from_errno(what, err);
  };
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("writing " + tmp);
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd.get(), mode) != 0) return fail("chmod " + tmp);
  if (sync && ::fsync(fd.get()) != 0) return fail("fsync " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("renaming " + tmp + " to " + path);
  if (!sync) return {};
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd || ::fsync(dir_fd.get()) != 0) return Error::from_errno("fsync " + dir);
  return {};
}

}  // namespace openshell::sys
