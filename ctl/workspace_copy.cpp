#include "ctl/workspace_copy.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include <iostream>
#include <nlohmann/json.hpp>
#include <systemd/sd-bus.h>

#include "core/unique_fd.hpp"
#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

namespace openshell::ctl {
namespace {

constexpr int kMaxDepth = 64;
constexpr size_t kCopyBuffer = 128 << 10;

std::string errno_text(int err) { return std::strerror(err); }

// openat2 below `dir`: no "..", absolute path or symlink may lead out of it (EXDEV).
int open_beneath(int dir, const std::string& path, uint64_t flags) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(
      ::syscall(SYS_openat2, dir, path.empty() ? "." : path.c_str(), &how, sizeof how));
}

std::string why_not(int err) {
  if (err == EXDEV) return "it leads outside the workspace (a symlink or '..')";
  if (err == ELOOP) return "a symlink is in the way";
  return errno_text(err);
}

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

std::string base_name(const std::string& path) {
  auto parts = components(path);
  return parts.empty() ? std::string() : parts.back();
}

std::string join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  return a.back() == '/' ? a + b : a + "/" + b;
}

bool copy_bytes(int in, int out, uint64_t* bytes) {
  std::vector<char> buf(kCopyBuffer);
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      done += w;
    }
    *bytes += static_cast<uint64_t>(n);
  }
}

// The entries of a directory we hold open, without "." and "..".
std::vector<std::string> entries_of(int dir) {
  std::vector<std::string> names;
  int copy = ::fcntl(dir, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return names;
  DIR* d = ::fdopendir(copy);
  if (d == nullptr) {
    ::close(copy);
    return names;
  }
  while (dirent* e = ::readdir(d)) {
    std::string_view n(e->d_name);
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  return names;
}

// Into the workspace. `depth`: components between the workspace root and `dir`.
class Uploader {
 public:
  Uploader(CopyReport* report, bool give, uid_t uid, gid_t gid)
      : report_(report), give_(give), uid_(uid), gid_(gid) {}

  void put(const std::string& src, int dir, const std::string& name, const std::string& shown,
           int depth) {
    struct stat st {};
    if (::lstat(src.c_str(), &st) != 0) return refuse(src, errno_text(errno));
    if (S_ISLNK(st.st_mode)) return link(src, dir, name, shown, depth);
    if (S_ISREG(st.st_mode)) return file(src, dir, name, shown, st.st_mode);
    if (S_ISDIR(st.st_mode)) return directory(src, dir, name, shown, depth, st.st_mode);
    refuse(src, "not a file, directory or symlink");
  }

 private:
  void refuse(const std::string& what, const std::string& why) {
    report_->refused.push_back(what + ": " + why);
  }
  // Root's copies become the workspace owner's; a copy that cannot is reported.
  void give(int dir, const std::string& name, const std::string& shown) {
    if (give_ && ::fchownat(dir, name.c_str(), uid_, gid_, AT_SYMLINK_NOFOLLOW) != 0)
      refuse(shown, std::string("copied, but not given to the workspace's owner: ") +
                        errno_text(errno));
  }

  void link(const std::string& src, int dir, const std::string& name, const std::string& shown,
            int depth) {
    char target[4096];
    ssize_t n = ::readlink(src.c_str(), target, sizeof target - 1);
    if (n < 0) return refuse(src, errno_text(errno));
    target[n] = '\0';
    if (!link_stays_inside(target, depth))
      return refuse(src, std::string("symlink to ") + target + " would lead outside the workspace");
    if (::symlinkat(target, dir, name.c_str()) != 0) return refuse(shown, errno_text(errno));
    give(dir, name, shown);
    ++report_->symlinks;
  }

  void file(const std::string& src, int dir, const std::string& name, const std::string& shown,
            mode_t mode) {
    UniqueFd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!in) return refuse(src, errno_text(errno));
    // O_NONBLOCK: a fifo the agent put in the way must not hang us (ENXIO without a reader).
    UniqueFd out(::openat(dir, name.c_str(),
                          O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode & 0777));
    if (!out) return refuse(shown, why_not(errno));
    struct stat st {};
    if (::fstat(out.get(), &st) != 0 || !S_ISREG(st.st_mode))
      return refuse(shown, "something other than a file is in the way");
    if (::ftruncate(out.get(), 0) != 0) return refuse(shown, errno_text(errno));
    (void)::fcntl(out.get(), F_SETFL, 0);
    if (!copy_bytes(in.get(), out.get(), &report_->bytes)) return refuse(shown, errno_text(errno));
    // By descriptor: the name may point elsewhere by now.
    if (give_ && ::fchown(out.get(), uid_, gid_) != 0)
      refuse(shown, std::string("copied, but not given to the workspace's owner: ") +
                        errno_text(errno));
    ++report_->files;
  }

  void directory(const std::string& src, int dir, const std::string& name,
                 const std::string& shown, int depth, mode_t mode) {
    if (depth >= kMaxDepth) return refuse(src, "nested too deep");
    const bool made = ::mkdirat(dir, name.c_str(), (mode & 0777) | 0700) == 0;
    if (!made && errno != EEXIST) return refuse(shown, errno_text(errno));
    UniqueFd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) return refuse(shown, why_not(errno));
    if (made && give_ && ::fchown(sub.get(), uid_, gid_) != 0)
      refuse(shown, std::string("made, but not given to the workspace's owner: ") +
                        errno_text(errno));
    ++report_->directories;
    UniqueFd from(::open(src.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!from) return refuse(src, errno_text(errno));
    for (const auto& entry : entries_of(from.get()))
      put(join(src, entry), sub.get(), entry, join(shown, entry), depth + 1);
  }

  CopyReport* report_;
  bool give_;
  uid_t uid_;
  gid_t gid_;
};

// Out of the workspace. `depth`: components between the copy's root and `dir`.
class Downloader {
 public:
  explicit Downloader(CopyReport* report) : report_(report) {}

  void get(int dir, const std::string& name, const std::string& shown, const std::string& dst,
           int depth) {
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return refuse(shown, errno_text(errno));
    if (S_ISLNK(st.st_mode)) return link(dir, name, shown, dst, depth);
    if (S_ISREG(st.st_mode)) {
      UniqueFd in(::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
      if (!in) return refuse(shown, why_not(errno));
      return file(in.get(), shown, dst);
    }
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return refuse(shown, why_not(errno));
      return directory(sub.get(), shown, dst, depth);
    }
    refuse(shown, "not a file, directory or symlink");
  }

  // An open source (the top of the copy, reached through symlinks inside the workspace).
  void file(int in, const std::string& shown, const std::string& dst) {
    struct stat st {};
    if (::fstat(in, &st) != 0 || !S_ISREG(st.st_mode))
      return refuse(shown, "not a regular file");
    (void)::fcntl(in, F_SETFL, 0);
    UniqueFd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                        st.st_mode & 0777));
    if (!out) return refuse(dst, errno_text(errno));
    if (!copy_bytes(in, out.get(), &report_->bytes)) return refuse(dst, errno_text(errno));
    ++report_->files;
  }

  void directory(int dir, const std::string& shown, const std::string& dst, int depth) {
    if (depth >= kMaxDepth) return refuse(shown, "nested too deep");
    struct stat st {};
    if (::mkdir(dst.c_str(), 0700) != 0 &&
        !(errno == EEXIST && ::lstat(dst.c_str(), &st) == 0 && S_ISDIR(st.st_mode)))
      return refuse(dst, errno == EEXIST ? "exists and is not a directory" : errno_text(errno));
    ++report_->directories;
    for (const auto& entry : entries_of(dir))
      get(dir, entry, join(shown, entry), join(dst, entry), depth + 1);
    if (::fstat(dir, &st) == 0) (void)::chmod(dst.c_str(), (st.st_mode & 0777) | 0700);
  }

 private:
  void refuse(const std::string& what, const std::string& why) {
    report_->refused.push_back(what + ": " + why);
  }

  void link(int dir, const std::string& name, const std::string& shown, const std::string& dst,
            int depth) {
    char target[4096];
    ssize_t n = ::readlinkat(dir, name.c_str(), target, sizeof target - 1);
    if (n < 0) return refuse(shown, errno_text(errno));
    target[n] = '\0';
    // depth - 1: the link's own directory, counted from the copy's root.
    if (!link_stays_inside(target, depth - 1))
      return refuse(shown, std::string("symlink to ") + target +
                               " leads outside what is being downloaded");
    if (::symlink(target, dst.c_str()) != 0) return refuse(dst, errno_text(errno));
    ++report_->symlinks;
  }

  CopyReport* report_;
};

}  // namespace

bool link_stays_inside(const std::string& target, int depth) {
  if (target.empty() || target.front() == '/') return false;
  int level = depth;
  for (const auto& part : components(target)) {
    if (part == ".") continue;
    level += part == ".." ? -1 : 1;
    if (level < 0) return false;
  }
  return true;
}

Result<std::string> workspace_relative(const std::string& path) {
  std::string rel = path;
  if (rel == "/sandbox" || rel.rfind("/sandbox/", 0) == 0) {
    rel.erase(0, std::string_view("/sandbox").size());
  } else if (!rel.empty() && rel.front() == '/') {
    return Error::invalid(path + ": only paths under /sandbox (the workspace) can be copied");
  }
  std::string clean;
  for (const auto& part : components(rel)) {
    if (part == ".") continue;
    if (part == "..") return Error::invalid(path + ": '..' is not allowed");
    clean = join(clean, part);
  }
  return clean;
}

Status upload(const std::string& from, int workspace, const std::string& to, CopyReport* report) {
  // What is not there to copy is an error, not a copy of nothing.
  struct stat source {};
  if (::lstat(from.c_str(), &source) != 0) return Error::from_errno(from);
  std::string dest = to;
  // Into an existing directory: under its own name there.
  if (UniqueFd existing(open_beneath(workspace, dest, O_PATH | O_DIRECTORY)); existing)
    dest = join(dest, base_name(from));
  const auto parts = components(dest);
  if (parts.empty()) return Error::invalid("name the copy in the workspace");
  std::string parent;
  for (size_t i = 0; i + 1 < parts.size(); ++i) parent = join(parent, parts[i]);
  UniqueFd dir(open_beneath(workspace, parent, O_PATH | O_DIRECTORY));
  if (!dir) return Error::invalid("/sandbox/" + parent + ": " + why_not(errno));
  struct stat ws {};
  if (::fstat(workspace, &ws) != 0) return Error::from_errno("stat of the workspace");
  // Root's copies go to the workspace's owner, as if the agent had written them.
  Uploader up(report, ::geteuid() == 0, ws.st_uid, ws.st_gid);
  up.put(from, dir.get(), parts.back(), "/sandbox/" + dest, static_cast<int>(parts.size()) - 1);
  return {};
}

Status download(int workspace, const std::string& from, const std::string& to,
                CopyReport* report) {
  std::string dest = to;
  struct stat st {};
  if (::stat(dest.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    const std::string name = base_name(from);
    dest = join(dest, name.empty() ? "sandbox" : name);
  }
  // The top may be reached through symlinks, as long as they stay inside the workspace.
  UniqueFd top(open_beneath(workspace, from, O_RDONLY | O_NONBLOCK));
  if (!top) return Error::invalid("/sandbox/" + from + ": " + why_not(errno));
  if (::fstat(top.get(), &st) != 0) return Error::from_errno("stat /sandbox/" + from);
  Downloader down(report);
  const std::string shown = "/sandbox/" + from;
  if (S_ISDIR(st.st_mode))
    down.directory(top.get(), shown, dest, 0);
  else
    down.file(top.get(), shown, dest);
  return {};
}

namespace {

Result<UniqueFd> open_workspace(sd_bus* bus, const std::string& sandbox) {
  auto reply = call(bus, "OpenWorkspace", [&](sd_bus_message* m) {
    return sd_bus_message_append(m, "s", sandbox.c_str());
  });
  if (!reply) return reply.error();
  int fd = -1;
  if (sd_bus_message_read(reply->get(), "h", &fd) < 0) return Error::invalid("unexpected reply");
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 3));  // the reply owns its descriptor
  if (!copy) return Error::from_errno("keeping the workspace descriptor");
  return copy;
}

}  // namespace

int run_copy(const Global& global, const std::string& sandbox, const std::string& remote,
             const std::function<Status(int, const std::string&, CopyReport*)>& copy) {
  auto relative = workspace_relative(remote);
  if (!relative) return fail(relative.error().message());
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto workspace = open_workspace(bus->get(), sandbox);
  if (!workspace) return fail(workspace.error().message());
  CopyReport report;
  if (auto st = copy(workspace->get(), *relative, &report); !st) return fail(st.error().message());
  if (global.json) {
    std::cout << nlohmann::json{{"files", report.files},
                                {"directories", report.directories},
                                {"symlinks", report.symlinks},
                                {"bytes", report.bytes},
                                {"refused", report.refused}}
                     .dump()
              << "\n";
  } else {
    std::cout << report.files << " file(s), " << report.directories << " directory(ies), "
              << report.symlinks << " symlink(s), " << report.bytes << " bytes\n";
    for (const auto& r : report.refused) std::cerr << "openshellctl: refused " << r << "\n";
  }
  return report.refused.empty() ? kExitOk : kExitFailed;
}

}  // namespace openshell::ctl
