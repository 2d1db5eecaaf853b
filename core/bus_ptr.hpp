// Owning pointers for sd-bus objects, shared by openshelld and openshellctl (both link
// libsystemd; this header only declares how each is released). Header-only: core itself does
// not link libsystemd.
#pragma once

#include <systemd/sd-bus.h>

#include <memory>

namespace openshell {

struct BusMessageRelease {
  void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using BusMessage = std::unique_ptr<sd_bus_message, BusMessageRelease>;
// A call kept to be answered later from the loop, shared by the callbacks that may answer it:
// a reference of its own.
using KeptCall = std::shared_ptr<sd_bus_message>;
inline KeptCall keep_call(sd_bus_message* m) {
  return KeptCall(sd_bus_message_ref(m), BusMessageRelease{});
}

struct BusSlotRelease {
  void operator()(sd_bus_slot* s) const { sd_bus_slot_unref(s); }
};
using BusSlot = std::unique_ptr<sd_bus_slot, BusSlotRelease>;

struct BusCredsRelease {
  void operator()(sd_bus_creds* c) const { sd_bus_creds_unref(c); }
};
using BusCreds = std::unique_ptr<sd_bus_creds, BusCredsRelease>;

// An sd_bus_error freed when it goes.
struct BusError {
  sd_bus_error error = SD_BUS_ERROR_NULL;
  BusError() = default;
  BusError(const BusError&) = delete;
  BusError& operator=(const BusError&) = delete;
  ~BusError() { sd_bus_error_free(&error); }
  sd_bus_error* get() { return &error; }
};

}  // namespace openshell
