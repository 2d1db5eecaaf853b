#include "ctl/bus_client.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>

#include "core/unique_fd.hpp"

namespace openshell::ctl {

void BusDeleter::operator()(sd_bus* bus) const { sd_bus_flush_close_unref(bus); }

Result<BusPtr> connect(const std::string& address) {
  sd_bus* bus = nullptr;
  int rc = 0;
  if (address.empty()) {
    rc = sd_bus_open_system(&bus);
  } else {
    rc = sd_bus_new(&bus);
    if (rc >= 0) rc = sd_bus_set_address(bus, address.c_str());
    if (rc >= 0) rc = sd_bus_set_bus_client(bus, 1);
    if (rc >= 0) rc = sd_bus_negotiate_fds(bus, 1);
    if (rc >= 0) rc = sd_bus_start(bus);
  }
  if (rc < 0) {
    sd_bus_unref(bus);
    return Error::from_errno("cannot reach openshelld's bus", -rc);
  }
  return BusPtr(bus);
}

Result<MessagePtr> new_call(sd_bus* bus, const char* method) {
  sd_bus_message* m = nullptr;
  int rc = sd_bus_message_new_method_call(bus, &m, "org.openshell.Manager1",
                                          "/org/openshell/Manager1", "org.openshell.Manager1",
                                          method);
  if (rc < 0) return Error::from_errno(std::string("building ") + method, -rc);
  return MessagePtr(m);
}

Error call_error(const sd_bus_error& error, int rc) {
  std::string text = error.message != nullptr ? error.message : std::strerror(-rc);
  if (error.name != nullptr && std::strcmp(error.name, SD_BUS_ERROR_SERVICE_UNKNOWN) == 0)
    text = "openshelld is not running (nothing owns org.openshell.Manager1 on this bus)";
  auto code = std::make_error_code(std::errc::invalid_argument);
  if (sd_bus_error_has_name(&error, "org.openshell.Error.CommandNotFound"))
    code = std::make_error_code(std::errc::no_such_file_or_directory);
  if (sd_bus_error_has_name(&error, "org.openshell.Error.CommandCannotExecute"))
    code = std::make_error_code(std::errc::permission_denied);
  return Error{code, text};
}

Result<MessagePtr> call_forwarding_signals(sd_bus* bus, sd_bus_message* request) {
  // The signals a terminal or a service manager sends us go to the command instead, through
  // SignalCommand naming this call's serial; we stay until its reply (its exit status) comes.
  sigset_t forwarded, old;
  sigemptyset(&forwarded);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&forwarded, sig);
  if (::sigprocmask(SIG_BLOCK, &forwarded, &old) != 0) return Error::from_errno("sigprocmask");
  struct Restore {
    sigset_t mask;
    ~Restore() { ::sigprocmask(SIG_SETMASK, &mask, nullptr); }
  } restore{old};
  UniqueFd signals(::signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals) return Error::from_errno("signalfd");

  struct State {
    bool done = false;
    MessagePtr reply;
  } state;
  auto on_reply = [](sd_bus_message* m, void* userdata, sd_bus_error*) -> int {
    auto* st = static_cast<State*>(userdata);
    st->done = true;
    st->reply.reset(sd_bus_message_ref(m));
    return 0;
  };
  sd_bus_slot* slot = nullptr;
  int rc = sd_bus_call_async(bus, &slot, request, on_reply, &state, UINT64_MAX);
  if (rc < 0) return Error::from_errno("sending the call", -rc);
  const BusSlot held(slot);
  uint64_t serial = 0;
  (void)sd_bus_message_get_cookie(request, &serial);
  while (!state.done) {
    while ((rc = sd_bus_process(bus, nullptr)) > 0 && !state.done) {
    }
    if (rc < 0) return Error::from_errno("the bus went away", -rc);
    if (state.done) break;
    pollfd fds[2] = {{sd_bus_get_fd(bus), static_cast<short>(sd_bus_get_events(bus)), 0},
                     {signals.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return Error::from_errno("poll");
    if ((fds[1].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      while (::read(signals.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info))
        (void)sd_bus_call_method_async(bus, nullptr, "org.openshell.Manager1",
                                       "/org/openshell/Manager1", "org.openshell.Manager1",
                                       "SignalCommand", nullptr, nullptr, "ti", serial,
                                       static_cast<int>(info.ssi_signo));
    }
  }
  const sd_bus_error* error = sd_bus_message_get_error(state.reply.get());
  if (error != nullptr) return call_error(*error, -EIO);
  return std::move(state.reply);
}

Result<MessagePtr> call_prepared(sd_bus* bus, sd_bus_message* request) {
  BusError error;
  sd_bus_message* reply = nullptr;
  // No timeout beyond the bus default for most calls; an exec may run as long as it runs.
  const uint64_t usec = UINT64_MAX;
  if (int rc = sd_bus_call(bus, request, usec, error.get(), &reply); rc < 0)
    return call_error(error.error, rc);
  return MessagePtr(reply);
}

int append_strings(sd_bus_message* m, const std::vector<std::string>& v) {
  int rc = sd_bus_message_open_container(m, 'a', "s");
  for (const auto& s : v)
    if (rc >= 0) rc = sd_bus_message_append(m, "s", s.c_str());
  if (rc >= 0) rc = sd_bus_message_close_container(m);
  return rc;
}

Result<int> append_options(sd_bus_message* m, const NewSandbox& options, bool with_env) {
  std::string workdir;
  if (!options.workdir.empty()) {
    // The daemon follows no symlink: it gets the real path, as we (the caller) see it.
    std::unique_ptr<char, decltype(&::free)> real(::realpath(options.workdir.c_str(), nullptr),
                                                  &::free);
    if (!real) return Error::from_errno("--workdir " + options.workdir);
    workdir = real.get();
  }
  int rc = sd_bus_message_open_container(m, 'a', "{sv}");
  if (rc >= 0 && !workdir.empty())
    rc = sd_bus_message_append(m, "{sv}", "workdir", "s", workdir.c_str());
  if (rc >= 0 && options.workdir_readonly)
    rc = sd_bus_message_append(m, "{sv}", "workdir_readonly", "b", 1);
  for (const auto& [key, list] : {std::pair<const char*, const std::vector<std::string>*>{
                                       "env", &options.env},
                                   {"providers", &options.providers},
                                   {"inference", &options.routes}}) {
    if (rc < 0 || !with_env || list->empty()) continue;
    rc = sd_bus_message_open_container(m, 'e', "sv");
    if (rc >= 0) rc = sd_bus_message_append(m, "s", key);
    if (rc >= 0) rc = sd_bus_message_open_container(m, 'v', "as");
    if (rc >= 0) rc = append_strings(m, *list);
    if (rc >= 0) rc = sd_bus_message_close_container(m);
    if (rc >= 0) rc = sd_bus_message_close_container(m);
  }
  if (rc >= 0) rc = sd_bus_message_close_container(m);
  return rc;
}

int read_strings(sd_bus_message* m, std::vector<std::string>* out) {
  int rc = sd_bus_message_enter_container(m, 'a', "s");
  const char* s = nullptr;
  while (rc >= 0 && (rc = sd_bus_message_read(m, "s", &s)) > 0) out->emplace_back(s);
  if (rc >= 0) rc = sd_bus_message_exit_container(m);
  return rc;
}

Result<std::string> read_policy_file(const std::string& file) {
  constexpr size_t kMaxPolicyBytes = 1 << 20;
  std::ifstream in;
  if (file != "-") {
    in.open(file, std::ios::binary);
    if (!in) return Error::from_errno("cannot read " + file, ENOENT);
  }
  std::istream& from = file == "-" ? std::cin : in;
  std::string text(kMaxPolicyBytes + 1, '\0');
  from.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(from.gcount()));
  if (text.size() > kMaxPolicyBytes) return Error::invalid(file + ": larger than 1 MiB");
  return text;
}

}  // namespace openshell::ctl
