#include "openshelld/provider_store.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "core/names.hpp"
#include "sys/file_util.hpp"

namespace openshell::daemon {
namespace {

constexpr size_t kMaxRecordBytes =
    (providers::kMaxCredentials + 1) * (providers::kMaxValueBytes + 256);
constexpr std::string_view kSuffix = ".json";

}  // namespace

Result<ProviderStore> ProviderStore::open(const std::string& state_dir) {
  const std::string dir = state_dir + "/providers";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Error::from_errno("creating " + dir);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Error::from_errno("looking at " + dir);
  if (!S_ISDIR(st.st_mode)) return Error::invalid(dir + " is not a directory");
  if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0)
    return Error::from_errno("making " + dir + " root-only");
  return ProviderStore(dir);
}

std::string ProviderStore::path(const std::string& name) const {
  return dir_ + "/" + name + std::string(kSuffix);
}

Status ProviderStore::put(const providers::Provider& provider) {
  if (auto st = providers::validate(provider); !st) return st;
  return sys::write_file_atomic(path(provider.name), providers::to_record(provider), 0600);
}

Result<providers::Provider> ProviderStore::get(const std::string& name) const {
  if (!valid_sandbox_name(name)) return Error::invalid("no provider " + name.substr(0, 64));
  auto text = sys::read_file(path(name), kMaxRecordBytes);
  if (!text) {
    if (text.error().code == std::errc::no_such_file_or_directory)
      return Error{std::make_error_code(std::errc::no_such_file_or_directory),
                   "no provider " + name};
    return text.error();
  }
  auto provider = providers::from_record(*text);
  if (!provider) return provider.error().wrap("provider " + name);
  if (provider->name != name) return Error::invalid("provider " + name + ": record of another");
  return provider;
}

bool ProviderStore::exists(const std::string& name) const {
  struct stat st {};
  return valid_sandbox_name(name) && ::stat(path(name).c_str(), &st) == 0;
}

Status ProviderStore::remove(const std::string& name) {
  if (!exists(name))
    return Error{std::make_error_code(std::errc::no_such_file_or_directory), "no provider " + name};
  if (::unlink(path(name).c_str()) != 0) return Error::from_errno("removing provider " + name);
  return {};
}

std::vector<std::string> ProviderStore::names(std::vector<std::string>* problems) const {
  std::vector<std::string> out;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(dir_.c_str()), ::closedir);
  if (!dir) return out;
  while (const dirent* e = ::readdir(dir.get())) {
    const std::string_view file = e->d_name;
    if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
    const std::string name(file.substr(0, file.size() - kSuffix.size()));
    if (!valid_sandbox_name(name)) continue;  // a temporary of write_file_atomic, or not ours
    if (auto p = get(name); p) {
      out.push_back(name);
    } else if (problems != nullptr) {
      problems->push_back(p.error().message());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace openshell::daemon
