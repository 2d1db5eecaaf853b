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

constexpr size_t kMaxProviderBytes =
    (providers::kMaxCredentials + 1) * (providers::kMaxValueBytes + 256);
constexpr size_t kMaxRouteBytes = 64 * 1024;
constexpr std::string_view kSuffix = ".json";

Error no_such(const std::string& kind, const std::string& name) {
  return Error{std::make_error_code(std::errc::no_such_file_or_directory),
               "no " + kind + " " + name.substr(0, 64)};
}

}  // namespace

Result<RecordDir> RecordDir::open(std::string dir, std::string kind) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Error::from_errno("creating " + dir);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Error::from_errno("looking at " + dir);
  if (!S_ISDIR(st.st_mode)) return Error::invalid(dir + " is not a directory");
  if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0)
    return Error::from_errno("making " + dir + " root-only");
  return RecordDir(std::move(dir), std::move(kind));
}

std::string RecordDir::path(const std::string& name) const {
  return dir_ + "/" + name + std::string(kSuffix);
}

Status RecordDir::write(const std::string& name, const std::string& text) const {
  if (!valid_sandbox_name(name)) return Error::invalid("bad " + kind_ + " name");
  return sys::write_file_atomic(path(name), text, 0600);
}

Result<std::string> RecordDir::read(const std::string& name, size_t max_bytes) const {
  if (!valid_sandbox_name(name)) return no_such(kind_, name);
  auto text = sys::read_file(path(name), max_bytes);
  if (!text && text.error().code == std::errc::no_such_file_or_directory)
    return no_such(kind_, name);
  return text;
}

bool RecordDir::exists(const std::string& name) const {
  struct stat st {};
  return valid_sandbox_name(name) && ::stat(path(name).c_str(), &st) == 0;
}

Status RecordDir::remove(const std::string& name) const {
  if (!exists(name)) return no_such(kind_, name);
  if (::unlink(path(name).c_str()) != 0) return Error::from_errno("removing " + kind_ + " " + name);
  return {};
}

std::vector<std::string> RecordDir::names() const {
  std::vector<std::string> out;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(dir_.c_str()), ::closedir);
  if (!dir) return out;
  while (const dirent* e = ::readdir(dir.get())) {
    const std::string_view file = e->d_name;
    if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
    std::string name(file.substr(0, file.size() - kSuffix.size()));
    if (valid_sandbox_name(name)) out.push_back(std::move(name));  // else a temporary, not ours
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<ProviderStore> ProviderStore::open(const std::string& state_dir) {
  auto dir = RecordDir::open(state_dir + "/providers", "provider");
  if (!dir) return dir.error();
  return ProviderStore(std::move(*dir));
}

Status ProviderStore::put(const providers::Provider& provider) {
  if (auto st = providers::validate(provider); !st) return st;
  return dir_.write(provider.name, providers::to_record(provider));
}

Result<providers::Provider> ProviderStore::get(const std::string& name) const {
  auto text = dir_.read(name, kMaxProviderBytes);
  if (!text) return text.error();
  auto provider = providers::from_record(*text);
  if (!provider) return provider.error().wrap("provider " + name);
  if (provider->name != name) return Error::invalid("provider " + name + ": record of another");
  return provider;
}

std::vector<std::string> ProviderStore::names(std::vector<std::string>* problems) const {
  std::vector<std::string> out;
  for (auto& name : dir_.names()) {
    if (auto p = get(name); p) {
      out.push_back(std::move(name));
    } else if (problems != nullptr) {
      problems->push_back(p.error().message());
    }
  }
  return out;
}

Result<RouteStore> RouteStore::open(const std::string& state_dir) {
  auto dir = RecordDir::open(state_dir + "/routes", "route");
  if (!dir) return dir.error();
  return RouteStore(std::move(*dir));
}

Status RouteStore::put(const inference::Route& route) {
  if (auto st = inference::validate(route); !st) return st;
  return dir_.write(route.name, inference::to_json(route).dump());
}

Result<inference::Route> RouteStore::get(const std::string& name) const {
  auto text = dir_.read(name, kMaxRouteBytes);
  if (!text) return text.error();
  const auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  auto route = inference::route_from_json(j);
  if (!route) return route.error().wrap("route " + name);
  if (route->name != name) return Error::invalid("route " + name + ": record of another");
  return route;
}

std::vector<inference::Route> RouteStore::all(std::vector<std::string>* problems) const {
  std::vector<inference::Route> out;
  for (const auto& name : dir_.names()) {
    if (auto r = get(name); r) {
      out.push_back(std::move(*r));
    } else if (problems != nullptr) {
      problems->push_back(r.error().message());
    }
  }
  return out;
}

}  // namespace openshell::daemon
