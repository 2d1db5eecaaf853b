#include "sys/nft.hpp"

#include <nftables/libnftables.h>

#include <memory>

namespace openshell::sys {

Status nft_apply(const std::string& ruleset) {
  std::unique_ptr<nft_ctx, decltype(&nft_ctx_free)> ctx(nft_ctx_new(NFT_CTX_DEFAULT),
                                                        &nft_ctx_free);
  if (!ctx) return Error::invalid("nft_ctx_new failed");
  // Keep libnftables' diagnostics for our error instead of letting it print to stderr.
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), ruleset.c_str()) != 0) {
    const char* err = nft_ctx_get_error_buffer(ctx.get());
    std::string message = err != nullptr ? err : "";
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return Error::invalid("applying nftables rules: " + message);
  }
  return {};
}

}  // namespace openshell::sys
