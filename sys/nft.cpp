#include "sys/nft.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <sched.h>

#include <thread>

#include "sys/netns.hpp"

namespace openshell::sys {
namespace {

// libnftables' entry points, resolved once. The header gives the types; the library is
// loaded with RTLD_LOCAL so its dependencies' symbols stay out of ours.
struct Api {
  decltype(&nft_ctx_new) ctx_new = nullptr;
  decltype(&nft_ctx_free) ctx_free = nullptr;
  decltype(&nft_ctx_buffer_output) buffer_output = nullptr;
  decltype(&nft_ctx_buffer_error) buffer_error = nullptr;
  decltype(&nft_ctx_get_error_buffer) get_error_buffer = nullptr;
  decltype(&nft_ctx_get_output_buffer) get_output_buffer = nullptr;
  decltype(&nft_run_cmd_from_buffer) run_cmd = nullptr;
  std::string error;  // why it could not be loaded
};

template <typename Fn>
bool resolve(void* lib, const char* name, Fn* out) {
  *out = reinterpret_cast<Fn>(::dlsym(lib, name));
  return *out != nullptr;
}

const Api& api() {
  static const Api loaded = [] {
    Api a;
    void* lib = ::dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = ::dlerror();
      a.error = std::string("cannot load libnftables.so.1: ") + (why != nullptr ? why : "");
      return a;
    }
    if (!resolve(lib, "nft_ctx_new", &a.ctx_new) || !resolve(lib, "nft_ctx_free", &a.ctx_free) ||
        !resolve(lib, "nft_ctx_buffer_output", &a.buffer_output) ||
        !resolve(lib, "nft_ctx_buffer_error", &a.buffer_error) ||
        !resolve(lib, "nft_ctx_get_error_buffer", &a.get_error_buffer) ||
        !resolve(lib, "nft_ctx_get_output_buffer", &a.get_output_buffer) ||
        !resolve(lib, "nft_run_cmd_from_buffer", &a.run_cmd)) {
      a = Api{};
      a.error = "libnftables.so.1 lacks an expected symbol";
    }
    return a;
  }();
  return loaded;
}

}  // namespace

void Nft::Free::operator()(nft_ctx* ctx) const { api().ctx_free(ctx); }

Result<Nft> Nft::open() {
  const Api& a = api();
  if (a.ctx_new == nullptr) return Error::invalid(a.error);
  nft_ctx* ctx = a.ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return Error::invalid("nft_ctx_new failed");
  Nft nft;
  nft.ctx_.reset(ctx);
  // Keep libnftables' diagnostics for our error instead of letting it print to stderr.
  a.buffer_output(ctx);
  a.buffer_error(ctx);
  return nft;
}

Status Nft::apply(const std::string& ruleset) {
  const Api& a = api();
  const int rc = a.run_cmd(ctx_.get(), ruleset.c_str());
  // Reading a buffer rewinds it: what a command printed does not pile up in a long-lived context.
  (void)a.get_output_buffer(ctx_.get());
  if (rc != 0) {
    const char* err = a.get_error_buffer(ctx_.get());
    std::string message = err != nullptr ? err : "";
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return Error::invalid("applying nftables rules: " + message);
  }
  return {};
}

Status nft_apply(const std::string& ruleset) {
  auto nft = Nft::open();
  if (!nft) return nft.error();
  return nft->apply(ruleset);
}

Status set_up_capture(Nft& nft, const std::array<uint8_t, 4>& v4_address,
                      const std::string& ruleset) {
  if (int err = loopback_up_in_child(); err != 0) return Error::from_errno("bringing up lo", err);
  if (auto st = add_capture_routes(v4_address); !st) return st;
  return nft.apply(ruleset);
}

Result<UniqueFd> new_capture_netns(const std::array<uint8_t, 4>& v4_address,
                                   const std::string& ruleset) {
  Result<UniqueFd> out = Error::invalid("not run");
  // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its own, which ends there.
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      out = Error::from_errno("creating a network namespace");
      return;
    }
    UniqueFd netns(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!netns) {
      out = Error::from_errno("opening the new network namespace");
      return;
    }
    auto nft = Nft::open();
    if (!nft) {
      out = nft.error();
      return;
    }
    if (auto st = set_up_capture(*nft, v4_address, ruleset); !st) {
      out = st.error();
      return;
    }
    out = std::move(netns);
  }).join();
  return out;
}

}  // namespace openshell::sys
