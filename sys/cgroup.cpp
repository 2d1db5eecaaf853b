#include "sys/cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sstream>

#include "sys/file_util.hpp"

namespace openshell::sys {
namespace {

// Mount point and fs type from one /proc/self/mountinfo line.
struct MountLine {
  std::string mount_point;
  std::string fstype;
  std::string super_options;
};

std::optional<MountLine> parse_mountinfo_line(const std::string& line) {
  // id parent major:minor root mount_point options [optional...] - fstype source super_options
  std::istringstream in(line);
  std::string id, parent, devno, root, mount_point, options;
  if (!(in >> id >> parent >> devno >> root >> mount_point >> options)) return std::nullopt;
  std::string field;
  while (in >> field && field != "-") {
  }
  MountLine m;
  std::string source;
  if (!(in >> m.fstype >> source >> m.super_options)) return std::nullopt;
  m.mount_point = mount_point;
  return m;
}

bool has_option(const std::string& options, const std::string& name) {
  std::istringstream in(options);
  std::string opt;
  while (std::getline(in, opt, ','))
    if (opt == name) return true;
  return false;
}

void sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

Status make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return Error::from_errno("creating cgroup " + path);
  return {};
}

std::vector<pid_t> read_pids(const std::string& procs_file) {
  std::vector<pid_t> pids;
  auto text = read_file(procs_file, 1 << 20);
  if (!text) return pids;
  std::istringstream in(*text);
  long pid;
  while (in >> pid) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

// The v2 controllers a parent offers its children.
std::string available_controllers(const std::string& dir) {
  auto text = read_file(dir + "/cgroup.controllers");
  return text ? *text : std::string();
}

bool has_word(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  std::string w;
  while (in >> w)
    if (w == word) return true;
  return false;
}

}  // namespace

bool CgroupLayout::has_controller(const std::string& controller) const {
  if (version == CgroupVersion::kV1) return v1_mounts.count(controller) > 0;
  return has_word(available_controllers(v2_root), controller);
}

Result<CgroupLayout> detect_cgroup_layout(std::optional<CgroupVersion> want) {
  auto text = read_file("/proc/self/mountinfo", 4 << 20);
  if (!text) return text.error().wrap("detecting cgroup layout");
  CgroupLayout layout;
  bool unified_at_root = false;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    auto m = parse_mountinfo_line(line);
    if (!m) continue;
    if (m->fstype == "cgroup2" && m->mount_point == "/sys/fs/cgroup") {
      unified_at_root = true;
      layout.v2_root = m->mount_point;
    } else if (m->fstype == "cgroup2" && layout.v2_root.empty()) {
      layout.v2_root = m->mount_point;  // hybrid: /sys/fs/cgroup/unified
    } else if (m->fstype == "cgroup") {
      for (const char* ctrl : {"memory", "pids", "cpu"})
        if (has_option(m->super_options, ctrl)) layout.v1_mounts.emplace(ctrl, m->mount_point);
    }
  }
  if (want == CgroupVersion::kV2) {
    if (layout.v2_root.empty())
      return Error{std::make_error_code(std::errc::no_such_file_or_directory),
                   "no cgroup v2 hierarchy is mounted"};
    layout.version = CgroupVersion::kV2;
  } else if (want == CgroupVersion::kV1) {
    if (layout.v1_mounts.empty())
      return Error{std::make_error_code(std::errc::no_such_file_or_directory),
                   "no cgroup v1 controller (memory, pids, cpu) is mounted"};
    layout.version = CgroupVersion::kV1;
  } else if (unified_at_root) {
    layout.version = CgroupVersion::kV2;
  } else if (!layout.v1_mounts.empty()) {
    layout.version = CgroupVersion::kV1;
  } else if (!layout.v2_root.empty()) {
    layout.version = CgroupVersion::kV2;
  } else {
    return Error{std::make_error_code(std::errc::no_such_file_or_directory),
                 "no cgroup hierarchy is mounted"};
  }
  return layout;
}

Result<std::string> adopt_delegated_cgroup(const CgroupLayout& layout) {
  auto text = read_file("/proc/self/cgroup", 64 << 10);
  if (!text) return text.error().wrap("reading our own cgroup");
  // Lines are "id:controllers:path"; v2's is "0::path", v1's name their controllers.
  std::string own;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    auto first = line.find(':');
    auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    std::string list = controllers;  // "cpu,cpuacct" -> "cpu cpuacct"
    for (auto& c : list)
      if (c == ',') c = ' ';
    if ((layout.version == CgroupVersion::kV2 && controllers.empty()) ||
        (layout.version == CgroupVersion::kV1 && has_word(list, "pids"))) {
      own = line.substr(second + 1);
      break;
    }
  }
  if (own.empty() || own.front() != '/' || own.find("/..") != std::string::npos)
    return Error::invalid("our own cgroup is not in /proc/self/cgroup");
  own.erase(0, 1);
  if (own.empty()) return Error::invalid("we are in the root cgroup: nothing was delegated to us");
  if (layout.version == CgroupVersion::kV2) {
    const std::string leaf = layout.v2_root + "/" + own + "/supervisor";
    if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST)
      return Error::from_errno("creating cgroup " + leaf);
    if (auto st = write_file(leaf + "/cgroup.procs", "0"); !st)
      return st.error().wrap("moving into " + leaf);
  }
  return own;
}

Result<Cgroup> Cgroup::create(const CgroupLayout& layout, const std::string& parent,
                              const std::string& name, const CgroupLimits& limits) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return Error::invalid("bad cgroup name '" + name + "'");
  Cgroup cg;
  cg.version_ = layout.version;

  if (layout.version == CgroupVersion::kV2) {
    const std::string& root = layout.v2_root;
    const std::string parent_dir = root + "/" + parent;
    const std::string dir = parent_dir + "/" + name;
    // Every limit we were asked for needs its controller enabled down the path.
    std::vector<std::string> wanted;
    if (limits.memory_max) wanted.emplace_back("memory");
    if (limits.pids_max) wanted.emplace_back("pids");
    if (limits.cpu_percent) wanted.emplace_back("cpu");
    for (const auto& ctrl : wanted)
      if (!has_word(available_controllers(root), ctrl))
        return Error{std::make_error_code(std::errc::not_supported),
                     "cgroup v2 controller '" + ctrl + "' is not available at " + root};
    if (auto st = make_dir(parent_dir); !st) return st.error();
    for (const auto& ctrl : wanted) {
      for (const auto& d : {root, parent_dir}) {
        if (has_word(available_controllers(d), ctrl)) {
          auto st = write_file(d + "/cgroup.subtree_control", "+" + ctrl);
          if (!st) return st.error().wrap("enabling cgroup controller " + ctrl);
        }
      }
    }
    if (::mkdir(dir.c_str(), 0755) != 0) return Error::from_errno("creating cgroup " + dir);
    cg.paths_.push_back(dir);
    cg.memory_path_ = limits.memory_max ? dir : std::string();
    auto undo = [&cg](const Error& e) -> Result<Cgroup> {
      (void)cg.remove();
      return e;
    };
    if (limits.memory_max) {
      if (auto st = write_file(dir + "/memory.max", std::to_string(*limits.memory_max)); !st)
        return undo(st.error());
      // Without this the sandbox could swap instead of hitting its limit.
      (void)write_file(dir + "/memory.swap.max", "0");
    }
    if (limits.pids_max)
      if (auto st = write_file(dir + "/pids.max", std::to_string(*limits.pids_max)); !st)
        return undo(st.error());
    if (limits.cpu_percent)
      if (auto st = write_file(dir + "/cpu.max",
                               std::to_string(uint64_t{*limits.cpu_percent} * 1000) + " 100000");
          !st)
        return undo(st.error());
    cg.dir_fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg.dir_fd_) return undo(Error::from_errno("opening cgroup " + dir));
    return cg;
  }

  // v1: one directory per controller we use. pids is always created so kill_all() can find
  // every process even when no limit is set.
  auto mount_of = [&layout](const char* ctrl) -> std::optional<std::string> {
    auto it = layout.v1_mounts.find(ctrl);
    if (it == layout.v1_mounts.end()) return std::nullopt;
    return it->second;
  };
  struct Want {
    const char* ctrl;
    bool required;
  };
  const Want wants[] = {{"pids", true},
                        {"memory", limits.memory_max.has_value()},
                        {"cpu", limits.cpu_percent.has_value()}};
  auto undo = [&cg](const Error& e) -> Result<Cgroup> {
    (void)cg.remove();
    return e;
  };
  for (const auto& w : wants) {
    if (!w.required) continue;
    auto mount = mount_of(w.ctrl);
    if (!mount)
      return undo(Error{std::make_error_code(std::errc::not_supported),
                        std::string("cgroup v1 controller '") + w.ctrl + "' is not mounted"});
    const std::string parent_dir = *mount + "/" + parent;
    const std::string dir = parent_dir + "/" + name;
    if (auto st = make_dir(parent_dir); !st) return undo(st.error());
    if (::mkdir(dir.c_str(), 0755) != 0) return undo(Error::from_errno("creating cgroup " + dir));
    cg.paths_.push_back(dir);
    if (std::string(w.ctrl) == "memory") cg.memory_path_ = dir;
  }
  if (limits.memory_max) {
    const std::string& dir = cg.memory_path_;
    if (auto st = write_file(dir + "/memory.limit_in_bytes", std::to_string(*limits.memory_max));
        !st)
      return undo(st.error());
    // memsw exists only with swap accounting; where it does, forbid swapping past the limit.
    (void)write_file(dir + "/memory.memsw.limit_in_bytes", std::to_string(*limits.memory_max));
  }
  for (const auto& p : cg.paths_) {
    if (limits.pids_max && p.find("/pids/") != std::string::npos)
      if (auto st = write_file(p + "/pids.max", std::to_string(*limits.pids_max)); !st)
        return undo(st.error());
    if (limits.cpu_percent && p.find("/cpu/") != std::string::npos) {
      if (auto st = write_file(p + "/cpu.cfs_period_us", "100000"); !st) return undo(st.error());
      if (auto st = write_file(p + "/cpu.cfs_quota_us",
                               std::to_string(uint64_t{*limits.cpu_percent} * 1000));
          !st)
        return undo(st.error());
    }
  }
  return cg;
}

std::string Cgroup::procs_file() const {
  for (const auto& p : paths_)
    if (version_ == CgroupVersion::kV2 || p.find("/pids/") != std::string::npos)
      return p + "/cgroup.procs";
  return paths_.empty() ? std::string() : paths_.front() + "/cgroup.procs";
}

Status Cgroup::add_pid(pid_t pid) const {
  for (const auto& p : paths_)
    if (auto st = write_file(p + "/cgroup.procs", std::to_string(pid)); !st) return st;
  return {};
}

bool Cgroup::populated() const {
  if (version_ == CgroupVersion::kV2 && !paths_.empty()) {
    auto events = read_file(paths_[0] + "/cgroup.events");
    if (events) return events->find("populated 1") != std::string::npos;
  }
  for (const auto& p : paths_)
    if (!read_pids(p + "/cgroup.procs").empty()) return true;
  return false;
}

void Cgroup::kill_all() const {
  if (version_ == CgroupVersion::kV2 && !paths_.empty() &&
      write_file(paths_[0] + "/cgroup.kill", "1").ok())
    return;
  // No cgroup.kill: kill what we see, repeatedly, since a process may fork while we look.
  for (int round = 0; round < 50; ++round) {
    bool any = false;
    for (const auto& p : paths_)
      for (pid_t pid : read_pids(p + "/cgroup.procs")) {
        ::kill(pid, SIGKILL);
        any = true;
      }
    if (!any) return;
    sleep_ms(2);
  }
}

Status Cgroup::remove() const {
  if (paths_.empty()) return {};
  bool killed = false;
  // Bounded: SIGKILLed tasks leave within milliseconds; give up after ~5 s.
  for (int i = 0; i < 2500 && populated(); ++i) {
    if (!killed || i % 100 == 0) kill_all();
    killed = true;
    sleep_ms(2);
  }
  Status result;
  for (const auto& p : paths_) {
    for (int i = 0; i < 500; ++i) {
      if (::rmdir(p.c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) {
        result = Error::from_errno("removing cgroup " + p);
        break;
      }
      if (i == 499) result = Error::from_errno("removing cgroup " + p);
      sleep_ms(2);
    }
  }
  return result;
}

uint64_t Cgroup::oom_kills() const {
  if (memory_path_.empty()) return 0;
  const char* file = version_ == CgroupVersion::kV2 ? "/memory.events" : "/memory.oom_control";
  auto text = read_file(memory_path_ + file);
  if (!text) return 0;
  std::istringstream in(*text);
  std::string key;
  uint64_t value;
  while (in >> key >> value)
    if (key == "oom_kill") return value;
  return 0;
}

}  // namespace openshell::sys
