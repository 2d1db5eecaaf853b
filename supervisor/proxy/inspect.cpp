// L7 inspection (DESIGN.md §5; issue 15): a connection to an endpoint with protocol rest or
// websocket is not relayed as bytes. Its TLS is terminated with the sandbox CA's leaf for the
// host it was allowed for, a verified TLS connection goes to the real host, and every HTTP/1.1
// request between them is read by Beast, judged by core/http_rules and only then sent on.
#include "supervisor/proxy/session.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/log.hpp"
#include "core/net_guard.hpp"
#include "core/tls_peek.hpp"
#include "supervisor/proxy/tls_contexts.hpp"

namespace openshell::supervisor::proxy {
namespace {

namespace ssl = asio::ssl;

// A denied request's body is read (and dropped) up to this much to keep its connection;
// a longer one closes it.
constexpr size_t kMaxDiscardedBody = 64 * 1024;

// Where a client finds the sandbox CA, for the event of one that did not.
constexpr const char* kTlsHint = "/etc/openshell-tls/ca-bundle.pem, SSL_CERT_FILE";

using beast::iequals;

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::string refusal_response(const RequestCheck& c, bool keep_alive) {
  static constexpr std::pair<int, std::string_view> kPhrases[] = {
      {400, "Bad Request"},
      {403, "Forbidden"},
      {413, "Payload Too Large"},
      {431, "Request Header Fields Too Large"},
      {502, "Bad Gateway"}};
  std::string_view phrase = "Error";
  for (const auto& [code, text] : kPhrases)
    if (code == c.status) phrase = text;
  nlohmann::json body = {{"error", c.error},   {"policy", c.policy}, {"rule", c.l7.rule},
                         {"method", c.method}, {"path", c.path},     {"reason", c.l7.reason}};
  return http_response(c.status, phrase,
                       body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                       c.status == 403 ? c.policy : "", keep_alive);
}

namespace {

// The path of a target as the event and the body show it when it could not be canonicalised:
// without the query, bounded.
std::string raw_path(std::string_view target) {
  return std::string(target.substr(0, std::min<size_t>(target.find('?'), 1024)));
}

}  // namespace

bool SessionRunner::inspects(const policy::Endpoint* endpoint) {
  return endpoint != nullptr && !endpoint->tls_skip &&
         (endpoint->protocol == policy::Protocol::kRest ||
          endpoint->protocol == policy::Protocol::kWebsocket);
}

RequestCheck SessionRunner::check_request(const Session& s, std::string_view head,
                                          const http::request_header<>& req,
                                          std::string_view target) {
  RequestCheck c;
  c.method = std::string(sv(req.method_string())).substr(0, 32);
  c.path = raw_path(target);
  c.target = std::string(target);
  const auto refuse = [&c](int status, std::string error, std::string reason, bool close) {
    c.status = status;
    c.error = std::move(error);
    c.l7.reason = std::move(reason);
    c.close = close;
    return c;
  };
  // Framing first: a head that may mean two things is never judged, only refused.
  if (auto st = l7::check_head_bytes(head); !st)
    return refuse(400, "bad_request", st.error().message(), true);
  l7::Fields fields;
  for (const auto& f : req) fields.emplace_back(sv(f.name_string()), sv(f.value()));
  if (auto st = l7::check_framing(fields); !st)
    return refuse(400, "bad_request", st.error().message(), true);
  // No domain fronting: the Host header names the host this connection was allowed for.
  const auto host_field = req.find(http::field::host);
  std::string named;
  uint16_t named_port = 0;
  const std::string connection_host = net::check_host(s.host).host;
  if (!net::split_authority(sv(host_field->value()), &named, &named_port, s.port) ||
      net::check_host(named).host != connection_host || named_port != s.port)
    return refuse(403, "host_mismatch",
                  "Host " + std::string(sv(host_field->value())).substr(0, 256) +
                      " is not the host this connection is for (" + connection_host + ":" +
                      std::to_string(s.port) + ")",
                  true);
  // Judged by the policy in force now: a connection outlives reloads, each request sees the
  // latest.
  const auto policy = config_.policy();
  const auto decision = egress::decide(*policy, {s.host, s.port, s.chain});
  c.policy = decision.rule;
  if (decision.verdict != egress::Verdict::kAllow)
    return refuse(403, std::string(egress::error_class(decision.reason)),
                  "policy changed: " + decision.reason_text, true);
  const policy::Endpoint* endpoint = decision.endpoint;
  if (!inspects(endpoint)) return c;  // an L4 endpoint now: its requests pass as they are
  c.binding = endpoint->credential_binding;
  c.body_rewrite = endpoint->request_body_credential_rewrite;
  c.inspected = true;
  auto canonical = l7::canonicalize(target, endpoint->allow_encoded_slash);
  if (!canonical) {
    const bool denied = canonical.error().code == std::errc::permission_denied;
    return refuse(denied ? 403 : 400, denied ? "policy_denied" : "bad_request",
                  canonical.error().context, !denied);
  }
  c.path = canonical->path;
  c.target = canonical->query.empty() ? canonical->path : canonical->path + "?" + canonical->query;
  auto query = l7::parse_query(canonical->query);
  if (!query) return refuse(400, "bad_request", query.error().message(), true);
  if (beast::websocket::is_upgrade(req) && endpoint->protocol != policy::Protocol::kWebsocket) {
    // A protocol switch would carry what no rule of a REST endpoint looks at.
    return refuse(403, "policy_denied",
                  "an upgrade to WebSocket needs protocol = \"websocket\" on the endpoint", false);
  }
  c.l7 = l7::evaluate(*endpoint, {c.method, c.path, std::move(*query)});
  if (!c.l7.allowed && !c.l7.audit_only) {
    c.status = 403;
    c.error = "policy_denied";
  }
  return c;
}

void SessionRunner::emit_http(const Session& s, const RequestCheck& check, int status) {
  if (config_.events == nullptr) return;
  egress::Decision d;
  d.rule = check.policy;
  d.host = net::check_host(s.host).host;
  d.audit_only = check.l7.audit_only;
  d.reason_text = check.l7.reason;
  const bool allowed = check.status == 0;
  ocsf::HttpInfo h;
  h.connection = connection_info(s, d, s.address, allowed);
  h.connection.reason = allowed && !check.l7.audit_only ? "" : check.error;
  if (check.l7.audit_only && h.connection.reason.empty()) h.connection.reason = "policy_denied";
  h.connection.protocol = "http";
  h.method = check.method;
  h.path = check.path;
  h.status = status;
  h.l7_rule = check.l7.rule;
  h.enforced = !check.l7.audit_only;
  config_.events->emit(ocsf::http_activity(config_.sandbox, h));
}

credentials::Lookup SessionRunner::secrets_for(
    const Session& s, const RequestCheck& check,
    std::shared_ptr<const services::Services>& held) const {
  held = config_.services ? config_.services() : nullptr;
  if (!held) held = std::make_shared<const services::Services>();
  return services::lookup_for(*held, net::check_host(s.host).host, s.port, check.binding);
}

void SessionRunner::credential_refused(const Session& s, RequestCheck& check,
                                       std::vector<std::string> keys, const std::string& why) {
  check.status = 403;
  check.error = "credential_endpoint_mismatch";
  check.l7.reason = why + " (a provider's placeholder goes only to its endpoints)";
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  if (config_.events != nullptr) {
    egress::Decision d;
    d.rule = check.policy;
    d.host = net::check_host(s.host).host;
    d.reason_text = check.l7.reason;
    auto c = connection_info(s, d, s.address, false);
    c.reason = check.error;
    config_.events->emit(
        ocsf::credential_finding(config_.sandbox, c, keys, check.method, check.path));
  }
  emit_http(s, check, 403);
}

void SessionRunner::resolve_credentials(const Session& s, http::request_header<>& req,
                                        RequestCheck& check) {
  std::vector<std::pair<std::string, std::string>> fields;
  std::vector<std::string> keys;
  bool changed = false;
  for (const auto& f : req) {
    std::string value(sv(f.value()));
    for (auto& key : credentials::keys_in_header(value)) keys.push_back(std::move(key));
    fields.emplace_back(std::string(sv(f.name_string())), std::move(value));
  }
  std::string target(sv(req.target()));
  for (auto& key : credentials::keys_in(target)) keys.push_back(std::move(key));
  if (keys.empty()) return;  // the common case: nothing to look up
  std::shared_ptr<const services::Services> held;
  const auto lookup = secrets_for(s, check, held);
  std::optional<Error> refused;
  for (auto& [name, value] : fields) {
    if (credentials::keys_in_header(value).empty()) continue;
    auto resolved = credentials::resolve_header(value, lookup);
    if (!resolved) {
      refused = resolved.error();
      break;
    }
    value = std::move(resolved->text);
    changed = true;
  }
  if (!refused && !credentials::keys_in(target).empty()) {
    if (auto resolved = credentials::resolve_target(target, lookup); resolved) {
      target = std::move(resolved->text);
      changed = true;
    } else {
      refused = resolved.error();
    }
  }
  if (refused) return credential_refused(s, check, std::move(keys), refused->message());
  if (!changed) return;
  // The secrets are in `req` only now, on their way upstream; nothing of them is kept.
  const std::vector<std::string> names = [&] {
    std::vector<std::string> n;
    for (const auto& f : req) n.emplace_back(sv(f.name_string()));
    return n;
  }();
  for (const auto& name : names) req.erase(name);
  for (const auto& [name, value] : fields) req.insert(name, value);
  req.target(target);
}

namespace {

// Answers a refused request. The connection stays for the next request when its framing
// allows: the refused body (if any, and short) is read and dropped, and nothing was sent
// behind it; a request that waits for 100-continue, a long body or bytes already pipelined
// behind the refused request end it. True when it stays.
template <class Stream>
awaitable<bool> answer_refusal(Stream& client, beast::flat_buffer& cbuf,
                               http::request_parser<http::buffer_body>& parser,
                               const RequestCheck& check, std::span<char> body) {
  auto& req = parser.get();
  bool keep = !check.close && req.keep_alive();
  if (keep && !parser.is_done() && iequals(req[http::field::expect], "100-continue")) keep = false;
  size_t dropped = 0;
  while (keep && !parser.is_done()) {
    req.body().data = body.data();
    req.body().size = body.size();
    error_code ec;
    co_await http::async_read(client, cbuf, parser, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    dropped += body.size() - req.body().size;
    if (ec || dropped > kMaxDiscardedBody) keep = false;
  }
  if (keep && cbuf.size() > 0) keep = false;  // pipelined behind it: never read
  const std::string response = refusal_response(check, keep);
  error_code ec;
  co_await asio::async_write(client, asio::buffer(response),
                             asio::redirect_error(use_awaitable, ec));
  co_return keep && !ec;
}

}  // namespace

template <class Client, class Upstream>
awaitable<bool> SessionRunner::send_rewritten_body(std::shared_ptr<Session> s, Client& client,
                                                   beast::flat_buffer& cbuf,
                                                   http::request_parser<http::buffer_body>& parser,
                                                   Upstream& upstream, std::span<char> body,
                                                   RequestCheck& check) {
  auto& req = parser.get();
  error_code ec;
  std::string response;
  if (iequals(req[http::field::expect], "100-continue")) {
    // The client waits for a go-ahead before it sends the body: ours, as we read it whole.
    response = "HTTP/1.1 100 Continue\r\n\r\n";
    co_await asio::async_write(client, asio::buffer(response),
                               asio::redirect_error(use_awaitable, ec));
    if (ec) co_return false;
    req.erase(http::field::expect);
  }
  std::shared_ptr<const services::Services> held;
  auto refused =
      co_await send_rewritten(client, cbuf, parser, upstream, body, secrets_for(*s, check, held));
  if (!refused) co_return true;
  if (refused->status == 403) {
    credential_refused(*s, check, std::move(refused->keys), refused->why);
  } else {
    check.status = refused->status;
    check.error = refused->status == 413 ? "payload_too_large" : "bad_gateway";
    check.l7.reason = refused->why;
    emit_http(*s, check, check.status);
  }
  response = refusal_response(check, false);
  co_await asio::async_write(client, asio::buffer(response),
                             asio::redirect_error(use_awaitable, ec));
  co_return false;
}

template awaitable<bool> SessionRunner::send_rewritten_body<tcp::socket, tcp::socket>(
    std::shared_ptr<Session>, tcp::socket&, beast::flat_buffer&,
    http::request_parser<http::buffer_body>&, tcp::socket&, std::span<char>, RequestCheck&);

template <class Client, class Upstream>
awaitable<void> SessionRunner::exchange(std::shared_ptr<Session> s, Client& client,
                                        beast::flat_buffer& cbuf, Upstream& upstream) {
  beast::flat_buffer ubuf;
  const auto body_buffer = std::make_unique_for_overwrite<char[]>(kRelayBuffer);
  const std::span<char> body(body_buffer.get(), kRelayBuffer);
  const auto idle = std::chrono::seconds(config_.limits.idle_timeout_s);
  const size_t head_limit = std::min(config_.limits.max_header_bytes, l7::kMaxHeadBytes);
  std::string head;
  std::string response;
  while (!s->closed) {
    arm_deadline(s, idle);
    const size_t n = co_await read_head(client, cbuf, head_limit);
    s->timer.cancel();
    if (n == 0) break;
    if (n == SIZE_MAX) {
      response = simple_error(431, "Request Header Fields Too Large", "request head too large");
      error_code ec;
      co_await asio::async_write(client, asio::buffer(response),
                                 asio::redirect_error(use_awaitable, ec));
      break;
    }
    head.assign(static_cast<const char*>(cbuf.data().data()), n);
    cbuf.consume(n);
    http::request_parser<http::buffer_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(head_limit));
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // streamed, never held whole
    error_code ec;
    parser.put(asio::buffer(head), ec);
    RequestCheck check;
    if (ec || !parser.is_header_done()) {
      check.status = 400;
      check.error = "bad_request";
      check.close = true;
      check.l7.reason = "malformed request head" + (ec ? ": " + ec.message() : std::string());
      emit_http(*s, check, check.status);
      response = refusal_response(check, false);
      co_await asio::async_write(client, asio::buffer(response),
                                 asio::redirect_error(use_awaitable, ec));
      break;
    }
    auto& req = parser.get();
    check = check_request(*s, head, req, sv(req.target()));
    if (check.status == 0) {
      if (check.inspected) req.target(check.target);
      resolve_credentials(*s, req, check);  // its refusal has its events
    } else {
      emit_http(*s, check, check.status);
    }
    if (check.status != 0) {
      arm_deadline(s, std::chrono::seconds(config_.limits.header_timeout_s));
      const bool keep = co_await answer_refusal(client, cbuf, parser, check, body);
      s->timer.cancel();
      if (!keep) break;
      continue;
    }
    const bool upgrade = beast::websocket::is_upgrade(req);
    const bool head_request = req.method() == http::verb::head;
    const bool client_keeps = req.keep_alive();
    http::serializer<true, http::buffer_body> sr{req};
    arm_deadline(s, idle);
    bool rewritten = false;
    if (check.body_rewrite && !parser.is_done()) {
      rewritten = true;
      if (!co_await send_rewritten_body(s, client, cbuf, parser, upstream, body, check)) break;
    } else if (!parser.is_done() && iequals(req[http::field::expect], "100-continue")) {
      // The client waits for the upstream's go-ahead before it sends the body.
      co_await http::async_write_header(upstream, sr, asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      http::response_parser<http::buffer_body> interim;
      interim.header_limit(static_cast<std::uint32_t>(config_.limits.max_header_bytes));
      co_await http::async_read_header(upstream, ubuf, interim,
                                       asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      if (interim.get().result() != http::status::continue_) {
        // A final answer instead: the body will not be read; the connection ends after it.
        emit_http(*s, check, interim.get().result_int());
        interim.get().keep_alive(false);
        http::serializer<false, http::buffer_body> isr{interim.get()};
        co_await relay_message(upstream, ubuf, interim, client, isr, body);
        break;
      }
      response = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(client, asio::buffer(response),
                                 asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
    if (!rewritten) {
      ec = co_await relay_message(client, cbuf, parser, upstream, sr, body);
      if (ec) break;
    }
    // The answer; interim ones (103 Early Hints) pass before it.
    std::optional<http::response_parser<http::buffer_body>> rp;
    for (;;) {
      rp.emplace();
      rp->header_limit(static_cast<std::uint32_t>(config_.limits.max_header_bytes));
      rp->body_limit(std::numeric_limits<std::uint64_t>::max());
      if (head_request) rp->skip(true);
      co_await http::async_read_header(upstream, ubuf, *rp,
                                       asio::redirect_error(use_awaitable, ec));
      const int code = ec ? 0 : rp->get().result_int();
      if (ec || code < 100 || code >= 200 || code == 101) break;
      http::serializer<false, http::buffer_body> isr{rp->get()};
      ec = co_await relay_message(upstream, ubuf, *rp, client, isr, body);
      if (ec) break;
    }
    s->timer.cancel();
    if (ec) {
      check.status = 502;
      check.error = "bad_gateway";
      check.l7.reason = "upstream sent no valid response head: " + ec.message();
      emit_http(*s, check, 502);
      response = refusal_response(check, false);
      co_await asio::async_write(client, asio::buffer(response),
                                 asio::redirect_error(use_awaitable, ec));
      break;
    }
    auto& res = rp->get();
    const int status = res.result_int();
    emit_http(*s, check, status);
    s->last_activity = std::chrono::steady_clock::now();
    if (status == 101) {
      if (!upgrade) break;  // a switch nobody asked for
      http::serializer<false, http::buffer_body> rsr{res};
      ec = co_await relay_message(upstream, ubuf, *rp, client, rsr, body);
      if (ec) break;
      co_await bridge(s, client, cbuf, upstream, ubuf);
      co_return;
    }
    // Persistence is hop-by-hop; here both hops end together, as the upstream connection is
    // this one's alone.
    const bool delimited = rp->is_done() || rp->chunked() || rp->content_length().has_value();
    const bool keep = client_keeps && res.keep_alive() && delimited;
    res.keep_alive(keep);
    http::serializer<false, http::buffer_body> rsr{res};
    arm_deadline(s, idle);
    ec = co_await relay_message(upstream, ubuf, *rp, client, rsr, body);
    s->timer.cancel();
    if (ec || !keep) break;
  }
  s->close();
}

template <class Client, class Upstream>
awaitable<void> SessionRunner::bridge(std::shared_ptr<Session> s, Client& client,
                                      beast::flat_buffer& cbuf, Upstream& upstream,
                                      beast::flat_buffer& ubuf) {
  // What either side sent behind the upgrade's head goes first.
  error_code ec;
  if (cbuf.size() > 0)
    co_await asio::async_write(upstream, cbuf.data(), asio::redirect_error(use_awaitable, ec));
  if (!ec && ubuf.size() > 0)
    co_await asio::async_write(client, ubuf.data(), asio::redirect_error(use_awaitable, ec));
  if (ec) {
    s->close();
    co_return;
  }
  int running = 2;
  const auto done = [s, &running](std::exception_ptr) {
    --running;
    s->close();
    s->timer.cancel();
  };
  asio::co_spawn(io_, copy_stream(s, client, upstream), done);
  asio::co_spawn(io_, copy_stream(s, upstream, client), done);
  // Idle watchdog; returns only once both directions ended (they use this frame's streams).
  const auto idle = std::chrono::seconds(config_.limits.idle_timeout_s);
  while (running > 0) {
    s->timer.expires_after(idle);
    co_await s->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (running > 0 && std::chrono::steady_clock::now() - s->last_activity >= idle) s->close();
  }
}

awaitable<std::optional<error_code>> SessionRunner::accept_tls(
    std::shared_ptr<Session> s, asio::ssl::stream<Replayed&>& client, const std::string& host) {
  if (auto st = present_leaf(client.native_handle(), config_.tls->ca(), host); !st) {
    log::warn("proxy", st.error().message());
    co_return std::nullopt;
  }
  error_code ec;
  arm_deadline(s, std::chrono::seconds(config_.limits.header_timeout_s));
  co_await client.async_handshake(ssl::stream_base::server,
                                  asio::redirect_error(use_awaitable, ec));
  s->timer.cancel();
  co_return ec;
}

awaitable<void> SessionRunner::inspect(std::shared_ptr<Session> s, std::string initial) {
  const auto peek = tls::peek_client_hello(
      std::span(reinterpret_cast<const uint8_t*>(initial.data()), initial.size()));
  if (peek.status == tls::PeekStatus::kNotTls || initial.empty()) {
    beast::flat_buffer cbuf;
    cbuf.commit(asio::buffer_copy(cbuf.prepare(initial.size()), asio::buffer(initial)));
    co_await exchange(s, s->client, cbuf, s->upstream);
    co_return;
  }
  if (peek.status != tls::PeekStatus::kSni && peek.status != tls::PeekStatus::kNoSni) {
    s->reset();  // a hello cut short by the peek's deadline, or not one
    co_return;
  }
  if (!config_.tls) {
    log::warn("proxy", "no TLS termination in this proxy: refusing an inspected connection");
    s->reset();
    co_return;
  }
  const std::string host = net::check_host(s->host).host;
  auto agent_context = config_.tls->agent();
  auto upstream_context = config_.tls->upstream();
  if (!agent_context || !upstream_context) {
    log::error("proxy", (agent_context ? upstream_context.error() : agent_context.error())
                            .wrap("TLS termination unavailable")
                            .message());
    s->reset();
    co_return;
  }
  Replayed replayed(s->client, std::move(initial));
  ssl::stream<Replayed&> client(replayed, **agent_context);
  const auto accepted = co_await accept_tls(s, client, host);
  if (!accepted) {
    s->reset();
    co_return;
  }
  error_code ec = *accepted;
  if (ec) {
    // Most often a client that does not trust the sandbox CA (its own trust store, pinning):
    // an event says so, as the agent's own error rarely does.
    egress::Decision d;
    d.reason = egress::DenyReason::kTlsRefused;
    d.host = host;
    d.rule = egress::decide(*config_.policy(), {s->host, s->port, s->chain}).rule;
    d.reason_text = "TLS with the agent for " + host + " failed (" + ec.message() +
                    "): a client that does not trust the sandbox CA (" + kTlsHint +
                    ") or pins certificates cannot be inspected";
    if (config_.events != nullptr)
      config_.events->emit(
          ocsf::network_activity(config_.sandbox, connection_info(*s, d, s->address, false)));
    s->close();
    co_return;
  }
  ssl::stream<tcp::socket&> upstream(s->upstream, **upstream_context);
  if (auto st = expect_host(upstream.native_handle(), host); !st) {
    log::warn("proxy", st.error().message());
    s->close();
    co_return;
  }
  arm_deadline(s, std::chrono::seconds(config_.limits.header_timeout_s));
  co_await upstream.async_handshake(ssl::stream_base::client,
                                    asio::redirect_error(use_awaitable, ec));
  s->timer.cancel();
  beast::flat_buffer cbuf;
  if (ec) {
    // Never a silent downgrade, never an unverified connection: the agent's first request gets
    // a 502 that says why.
    std::string why = verification_failure(upstream.native_handle());
    if (why.empty()) why = ec.message();
    RequestCheck check;
    check.status = 502;
    check.error = "upstream_tls_failed";
    check.l7.reason = "TLS with " + host + " failed: " + why;
    check.policy = egress::decide(*config_.policy(), {s->host, s->port, s->chain}).rule;
    arm_deadline(s, std::chrono::seconds(config_.limits.header_timeout_s));
    const size_t n = co_await read_head(client, cbuf, config_.limits.max_header_bytes);
    s->timer.cancel();
    if (n != 0 && n != SIZE_MAX) {
      http::request_parser<http::empty_body> parser;
      parser.put(asio::buffer(cbuf.data().data(), n), ec);
      if (parser.is_header_done()) {
        check.method = std::string(sv(parser.get().method_string())).substr(0, 32);
        check.path = raw_path(sv(parser.get().target()));
      }
    }
    emit_http(*s, check, 502);
    const std::string response = refusal_response(check, false);
    co_await asio::async_write(client, asio::buffer(response),
                               asio::redirect_error(use_awaitable, ec));
    s->close();
    co_return;
  }
  co_await exchange(s, client, cbuf, upstream);
}

}  // namespace openshell::supervisor::proxy
