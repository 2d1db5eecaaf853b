// The proxy's connections, inside: what server.cpp (accepting, deciding, dialing, tunnels) and
// inspect.cpp (TLS termination and HTTP requests judged one by one) share. Not an interface:
// only those two include it.
#pragma once

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/credentials.hpp"
#include "core/egress.hpp"
#include "core/http_rules.hpp"
#include "core/ocsf.hpp"
#include "supervisor/proxy/lazy_pool.hpp"
#include "supervisor/proxy/server.hpp"

namespace openshell::supervisor::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

inline constexpr size_t kRelayBuffer = 64 * 1024;

// A complete response with a JSON body; `rule` (when set) goes in X-OpenShell-Policy.
std::string http_response(int status, std::string_view reason, const std::string& body,
                          const std::string& rule, bool keep_alive = false);
// {"error": reason, "detail": detail}.
std::string simple_error(int status, std::string_view reason, std::string_view detail);

struct ProxyServer::Session : std::enable_shared_from_this<Session> {
  explicit Session(tcp::socket socket)
      : client(std::move(socket)), upstream(client.get_executor()), timer(client.get_executor()) {}

  tcp::socket client;
  tcp::socket upstream;
  asio::steady_timer timer;
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
  bool closed = false;
  int pumps = 0;
  // What was decided, for re-evaluation when the policy changes.
  bool established = false;
  std::string host;
  uint16_t port = 0;
  std::string address;  // what was dialed
  std::vector<std::string> chain;
  pid_t pid = -1;
  std::string mode;

  void close() {
    if (closed) return;
    closed = true;
    error_code ec;
    client.close(ec);
    upstream.close(ec);
    timer.cancel();
  }
  // A refused transparent connection gets a reset, as a closed port would give.
  void reset() {
    error_code ec;
    client.set_option(asio::socket_base::linger(true, 0), ec);
    close();
  }
};

struct ProxyServer::Impl {
  Impl(asio::io_context& io, int explicit_fd, int transparent_fd)
      : explicit_acceptor(io, tcp::v4(), explicit_fd),
        transparent_acceptor(io, tcp::v4(), transparent_fd),
        resolver_pool(2) {}
  tcp::acceptor explicit_acceptor;
  tcp::acceptor transparent_acceptor;
  LazyPool resolver_pool;  // name resolution blocks: never on the io thread
  std::set<std::shared_ptr<Session>> sessions;
  // inference.local calls being read or answered: each holds its request (up to
  // inference::kMaxRequestBody) in memory, so there are at most kMaxInferenceCalls at once.
  static constexpr size_t kMaxInferenceCalls = 16;
  size_t inference_calls = 0;
};

struct Dialed {
  bool ok = false;
  egress::Decision decision;
  int status = 403;  // for the explicit proxy when !ok
  std::string address;
};

// One HTTP request's head as the proxy judges it (inspect.cpp).
struct RequestCheck {
  int status = 0;      // 0: forward it; else the status of the refusal
  bool close = false;  // its framing cannot be trusted: nothing after it is read
  std::string error;   // the refusal's class: "policy_denied", "bad_request", ...
  std::string method;
  std::string path;        // canonical, without the query
  std::string target;      // canonical, what goes upstream
  std::string policy;      // the network_policies entry
  l7::Decision l7;         // what the endpoint's rules said (l7.rule empty: none were consulted)
  bool inspected = false;  // the endpoint's rules were consulted: an HTTP Activity event
  // The endpoint's credential_binding and request_body_credential_rewrite.
  std::optional<std::string> binding;
  bool body_rewrite = false;
};

// The answer to a refused request (RequestCheck::status): the JSON an agent can act on
// (error, policy, rule, method, path, reason); a 403 names the policy in X-OpenShell-Policy.
std::string refusal_response(const RequestCheck& check, bool keep_alive);

// The connected socket with the bytes already taken from it (the ClientHello we peeked at)
// given back first: what the TLS server side reads from.
class Replayed {
 public:
  using executor_type = tcp::socket::executor_type;
  using lowest_layer_type = tcp::socket::lowest_layer_type;

  Replayed(tcp::socket& socket, std::string prefix) : socket_(socket), prefix_(std::move(prefix)) {}
  executor_type get_executor() { return socket_.get_executor(); }
  lowest_layer_type& lowest_layer() { return socket_.lowest_layer(); }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, size_t)>(
        [this](auto handler, const Buffers& b) {
          if (offset_ == prefix_.size()) {
            socket_.async_read_some(b, std::move(handler));
            return;
          }
          const size_t n = asio::buffer_copy(
              b, asio::buffer(prefix_.data() + offset_, prefix_.size() - offset_));
          offset_ += n;
          asio::post(socket_.get_executor(),
                     [h = std::move(handler), n]() mutable { h(error_code{}, n); });
        },
        token, buffers);
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return socket_.async_write_some(buffers, std::forward<Token>(token));
  }

 private:
  tcp::socket& socket_;
  std::string prefix_;
  size_t offset_ = 0;
};

// Relays one HTTP message (head already parsed into p) from `from` to `to` through `sr`, the
// body streamed through `body` (the connection's, reused for every message): chunked or sized,
// Beast does the framing both ways. `sr` may have sent the head already. `tap`, when given,
// sees the body's bytes as they pass.
template <class From, class To, bool kIsRequest>
awaitable<error_code> relay_message(From& from, beast::flat_buffer& buffer,
                                    http::parser<kIsRequest, http::buffer_body>& p, To& to,
                                    http::serializer<kIsRequest, http::buffer_body>& sr,
                                    std::span<char> body,
                                    const std::function<void(std::string_view)>* tap = nullptr) {
  error_code ec;
  do {
    if (!p.is_done()) {
      p.get().body().data = body.data();
      p.get().body().size = body.size();
      // What has come, not a full buffer: a stream (SSE) flows event by event.
      co_await http::async_read_some(from, buffer, p, asio::redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return ec;
      p.get().body().size = body.size() - p.get().body().size;
      p.get().body().data = body.data();
      if (tap != nullptr) (*tap)(std::string_view(body.data(), p.get().body().size));
      // Nothing read (a chunk's head alone): a null buffer, which the serializer takes for
      // "more to come" (an empty one it would send as a chunk of size 0: the last).
      if (p.get().body().size == 0) p.get().body().data = nullptr;
      p.get().body().more = !p.is_done();
    } else {
      p.get().body().data = nullptr;
      p.get().body().size = 0;
      p.get().body().more = false;  // buffer_body starts with more = true
    }
    co_await http::async_write(to, sr, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return ec;
  } while (!p.is_done() && !sr.is_done());
  co_return ec;
}

// An endpoint with request_body_credential_rewrite: the rest of the request's body read whole
// (at most credentials::kMaxRewriteBody), each placeholder resolved for the body's type, and the
// request sent with its new Content-Length. A refusal (nothing was sent): 413, 403 (a
// placeholder not bound here: its keys) or 400.
struct BodyRefusal {
  int status = 0;
  std::string why;
  std::vector<std::string> keys;
};
template <class Client, class Upstream>
awaitable<std::optional<BodyRefusal>> send_rewritten(
    Client& client, beast::flat_buffer& cbuf, http::request_parser<http::buffer_body>& parser,
    Upstream& upstream, std::span<char> chunk, credentials::Lookup lookup) {
  auto& req = parser.get();
  std::string whole;
  while (!parser.is_done()) {
    req.body().data = chunk.data();
    req.body().size = chunk.size();
    error_code ec;
    co_await http::async_read(client, cbuf, parser, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return BodyRefusal{400, "the request body could not be read: " + ec.message(), {}};
    whole.append(chunk.data(), chunk.size() - req.body().size);
    if (whole.size() > credentials::kMaxRewriteBody)
      co_return BodyRefusal{413,
                            "a body whose credentials are rewritten is at most " +
                                std::to_string(credentials::kMaxRewriteBody / 1024) + " KiB",
                            {}};
  }
  auto resolved = credentials::resolve_body(
      whole, credentials::body_kind(std::string_view(req[http::field::content_type].data(), req[http::field::content_type].size())), lookup);
  if (!resolved)
    co_return BodyRefusal{403, resolved.error().message(), credentials::keys_in(whole)};
  http::request<http::string_body> out;
  out.base() = req.base();
  out.body() = std::move(resolved->text);
  out.prepare_payload();
  error_code ec;
  co_await http::async_write(upstream, out, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return BodyRefusal{502, "the upstream went away: " + ec.message(), {}};
  co_return std::nullopt;
}

// Bytes one way until either side ends.
template <class From, class To>
awaitable<void> copy_stream(std::shared_ptr<ProxyServer::Session> s, From& from, To& to) {
  const auto buf = std::make_unique_for_overwrite<char[]>(kRelayBuffer);
  for (;;) {
    error_code ec;
    const size_t n = co_await from.async_read_some(asio::buffer(buf.get(), kRelayBuffer),
                                                   asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    s->last_activity = std::chrono::steady_clock::now();
    co_await asio::async_write(to, asio::buffer(buf.get(), n),
                               asio::redirect_error(use_awaitable, ec));
    if (ec) break;
  }
}

// All session logic lives here so the public header stays small.
class SessionRunner {
 public:
  using Session = ProxyServer::Session;
  SessionRunner(ProxyServer::Impl& impl, const ProxyConfig& config, asio::io_context& io)
      : impl_(impl), config_(config), io_(io) {}

  awaitable<void> run_explicit(std::shared_ptr<Session> s);
  awaitable<void> send_and_close(std::shared_ptr<Session> s, std::string response);
  awaitable<void> tunnel(std::shared_ptr<Session> s, const std::string& host, uint16_t port,
                         beast::flat_buffer& buffer, const std::string& problem);
  awaitable<void> run_transparent(std::shared_ptr<Session> s);
  void reevaluate();

 private:
  std::vector<std::string> identify(Session& s, const tcp::endpoint& server, std::string* problem);
  awaitable<std::vector<IpAddress>> resolve(const std::string& host);
  awaitable<Dialed> decide_and_dial(Session& s, const std::string& host, uint16_t port);
  // Through the operator's proxy (ProxyConfig::upstream_proxy): CONNECT host:port on a new
  // connection to it, which becomes s.upstream. "" on success, else why not.
  awaitable<std::string> dial_through_proxy(Session& s, const std::string& host, uint16_t port);
  // A new s.upstream connected to `to`, or why not, within the connect timeout.
  awaitable<error_code> connect_within(Session& s, tcp::endpoint to);
  // A new s.upstream connected to the first of `addresses` that answers on `port` (each within
  // the connect timeout); `connected` (when given) gets its address.
  awaitable<error_code> connect_any(Session& s, const std::vector<IpAddress>& addresses,
                                    uint16_t port, std::string* connected);
  // s.upstream's pending operations are cancelled when `deadline` (the connect timeout) fires.
  void cancel_upstream_at(Session& s, asio::steady_timer& deadline);
  // Sends to_upstream, then relays both ways until both sides are done or the tunnel idles out.
  // upstream_flowing: the upstream -> client direction was started already (start_downstream).
  awaitable<void> relay(std::shared_ptr<Session> s, std::string to_upstream,
                        bool upstream_flowing = false);
  void start_downstream(const std::shared_ptr<Session>& s);
  awaitable<void> pump(std::shared_ptr<Session> s, bool upstream_to_client);
  awaitable<std::string> read_initial(Session& s, std::string already);
  ocsf::ConnectionInfo connection_info(const Session& s, const egress::Decision& d,
                                       const std::string& address, bool allowed) const;
  void emit(const Session& s, const egress::Decision& d, const std::string& address, bool allowed);
  void arm_deadline(std::shared_ptr<Session> s, std::chrono::milliseconds after);

  // --- inspect.cpp: L7 ---
 public:
  // Whether connections to this endpoint are inspected: protocol rest or websocket, not
  // tls = "skip".
  static bool inspects(const policy::Endpoint* endpoint);
  // A connection to an inspected endpoint, allowed and dialed; `initial`: what the client sent
  // so far. TLS is terminated when it speaks TLS; then (or in plain HTTP) every request is
  // judged before it goes upstream.
  awaitable<void> inspect(std::shared_ptr<Session> s, std::string initial);
  // One request head (its bytes `head`, as Beast parsed it, its target in origin form) for
  // s's connection: framing, Host, the policy in force and, on an inspected endpoint, its rules.
  RequestCheck check_request(const Session& s, std::string_view head,
                             const http::request_header<>& req, std::string_view target);
  // The agent's side of TLS, with the sandbox CA's leaf for `host`: the handshake's outcome,
  // or nullopt when no leaf could be presented (logged).
  awaitable<std::optional<error_code>> accept_tls(std::shared_ptr<Session> s,
                                                  asio::ssl::stream<Replayed&>& client,
                                                  const std::string& host);
  // An HTTP Activity event for a request checked; `status`: what the client got.
  void emit_http(const Session& s, const RequestCheck& check, int status);
  // Each credential placeholder in the head's fields and target replaced by its secret, where
  // this endpoint is bound to its provider. Otherwise (or for a key no provider has) `check`
  // becomes a 403 credential_endpoint_mismatch, with a Detection Finding and its HTTP event,
  // and `req` is left as it was: nothing of it may go upstream.
  void resolve_credentials(const Session& s, http::request_header<>& req, RequestCheck& check);
  // The 403 credential_endpoint_mismatch: `check` says so, a Detection Finding names the keys,
  // and the request's HTTP Activity event.
  void credential_refused(const Session& s, RequestCheck& check, std::vector<std::string> keys,
                          const std::string& why);
  // An endpoint with request_body_credential_rewrite: the request (its head checked and
  // resolved) goes upstream with its body rewritten (send_rewritten). False when it was
  // refused instead: the client has its answer and the connection ends.
  template <class Client, class Upstream>
  awaitable<bool> send_rewritten_body(std::shared_ptr<Session> s, Client& client,
                                      beast::flat_buffer& cbuf,
                                      http::request_parser<http::buffer_body>& parser,
                                      Upstream& upstream, std::span<char> body,
                                      RequestCheck& check);
  // The sandbox's secrets for an endpoint with request_body_credential_rewrite (core/credentials).
  credentials::Lookup secrets_for(const Session& s, const RequestCheck& check,
                                  std::shared_ptr<const services::Services>& held) const;

 private:
  // Request after request from `client` (what it sent so far in `cbuf`) to `upstream`.
  template <class Client, class Upstream>
  awaitable<void> exchange(std::shared_ptr<Session> s, Client& client, beast::flat_buffer& cbuf,
                           Upstream& upstream);
  // After a WebSocket upgrade: bytes both ways (first what each buffer holds) until either
  // side ends or both idle out.
  template <class Client, class Upstream>
  awaitable<void> bridge(std::shared_ptr<Session> s, Client& client, beast::flat_buffer& cbuf,
                         Upstream& upstream, beast::flat_buffer& ubuf);

  // --- inference_router.cpp: the privacy router ---
 public:
  // A connection to inference.local (CONNECT, an absolute http:// request, or the transparent
  // port for capture::kInferenceAddress); `initial`: what the agent sent so far. Served by the
  // router, before and apart from any policy: TLS (when it speaks TLS) with a leaf for
  // inference.local, then call after call.
  awaitable<void> serve_inference(std::shared_ptr<Session> s, std::string initial);

 private:
  struct Attempt;
  struct Backend;
  template <class Client>
  awaitable<void> route_calls(std::shared_ptr<Session> s, Client& client, beast::flat_buffer& cbuf);
  // One call: answered by the router itself, or by the first route that answers. Whether the
  // agent's connection stays.
  template <class Client>
  awaitable<bool> route_call(std::shared_ptr<Session> s, Client& client,
                             http::request<http::string_body>& req, Backend& backend);
  template <class Client>
  awaitable<Attempt> try_route(std::shared_ptr<Session> s, Client& client,
                               const http::request<http::string_body>& req,
                               const std::string& target, const inference::Route& route,
                               const services::Services& svc, bool last, bool client_keeps,
                               Backend& backend, std::chrono::steady_clock::time_point started);
  template <class Client, class Upstream>
  awaitable<Attempt> call_backend(std::shared_ptr<Session> s, Client& client, Upstream& upstream,
                                  Backend& backend, http::request<http::string_body>& out_req,
                                  bool last, bool client_keeps,
                                  std::chrono::steady_clock::time_point started);
  void emit_inference(const Session& s, ocsf::InferenceInfo info);

  ProxyServer::Impl& impl_;
  const ProxyConfig& config_;
  asio::io_context& io_;
};

// Reads one request head (the request line to the blank line) into the front of `buffer`:
// its length, 0 when the client closed or the read failed, SIZE_MAX when none ends within
// `limit` bytes. A head ending in a bare "\n\n" ends too: check_head_bytes refuses it.
template <class Stream>
awaitable<size_t> read_head(Stream& stream, beast::flat_buffer& buffer, size_t limit) {
  size_t searched = 0;
  for (;;) {
    const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
    for (size_t i = searched; i < data.size(); ++i) {
      if (data[i] != '\n') continue;
      if (i + 1 < data.size() && data[i + 1] == '\n') co_return i + 2;
      if (i + 2 < data.size() && data[i + 1] == '\r' && data[i + 2] == '\n') co_return i + 3;
    }
    searched = data.size() >= 2 ? data.size() - 2 : 0;
    if (data.size() >= limit) co_return SIZE_MAX;
    error_code ec;
    const size_t want = std::min<size_t>(4096, limit - data.size());
    const size_t n = co_await stream.async_read_some(buffer.prepare(want),
                                                     asio::redirect_error(use_awaitable, ec));
    if (ec) co_return 0;
    buffer.commit(n);
  }
}

}  // namespace openshell::supervisor::proxy
