#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without including it

#include "supervisor/proxy/server.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <limits>
#include <memory>
#include <span>
#include <nlohmann/json.hpp>

#include "core/capture.hpp"
#include "core/egress.hpp"
#include "core/log.hpp"
#include "core/net_guard.hpp"
#include "core/tls_peek.hpp"
#include "supervisor/proxy/identity.hpp"
#include "supervisor/proxy/session.hpp"
#include "sys/process.hpp"

namespace openshell::supervisor::proxy {
namespace {

constexpr int kSoOriginalDst = 80;  // linux/netfilter_ipv4.h; that header clashes with netinet/in.h
constexpr size_t kPipeBuffer = 256 * 1024;  // per tunnel direction, kernel memory

IpAddress to_ip(const asio::ip::address& a) {
  IpAddress ip;
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  } else {
    ip.v6 = true;
    auto b = a.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  }
  return ip;
}

asio::ip::address to_asio(const IpAddress& ip) {
  if (!ip.v6) {
    asio::ip::address_v4::bytes_type b;
    std::copy(ip.bytes.begin(), ip.bytes.begin() + 4, b.begin());
    return asio::ip::address_v4(b);
  }
  asio::ip::address_v6::bytes_type b;
  std::copy(ip.bytes.begin(), ip.bytes.end(), b.begin());
  return asio::ip::address_v6(b);
}

sockaddr_storage to_sockaddr(const tcp::endpoint& ep) {
  sockaddr_storage ss{};
  std::memcpy(&ss, ep.data(), std::min<size_t>(ep.size(), sizeof ss));
  return ss;
}

}  // namespace

std::string http_response(int status, std::string_view reason, const std::string& body,
                          const std::string& rule, bool keep_alive) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  r += "Content-Type: application/json\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  if (!rule.empty()) r += "X-OpenShell-Policy: " + rule + "\r\n";
  r += "\r\n" + body;
  return r;
}

std::string simple_error(int status, std::string_view reason, std::string_view detail) {
  nlohmann::json body = {{"error", reason}, {"detail", detail}};
  return http_response(status, reason, body.dump(), "");
}

namespace {

std::string json_denial(const egress::Decision& d, const std::string& host, uint16_t port,
                        const std::string& binary) {
  nlohmann::json body = {{"error", egress::error_class(d.reason)},
                         {"reason", egress::to_string(d.reason)},
                         {"detail", d.reason_text},
                         {"host", host},
                         {"port", port},
                         {"binary", binary},
                         {"policy", d.rule}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A coroutine, not a lambda: a lambda coroutine's captures die with the lambda object, which
// co_spawn does not keep; parameters live in the coroutine's own frame.
awaitable<std::vector<IpAddress>> resolve_blocking(Resolve resolve, std::string name) {
  try {
    co_return resolve(name);
  } catch (const std::exception&) {
    co_return std::vector<IpAddress>{};  // nothing resolved: the decision denies
  }
}

}  // namespace

namespace {

// What an explicit-proxy client gets when its connection was not made: 502 when the upstream
// did not answer, otherwise 403 with the JSON an agent can act on.
std::string refusal(const Dialed& dialed, const std::string& host, uint16_t port,
                    const std::vector<std::string>& chain, const std::string& problem) {
  if (dialed.status == 502) return simple_error(502, "Bad Gateway", dialed.decision.reason_text);
  egress::Decision decision = dialed.decision;
  if (!problem.empty() && chain.empty())
    decision.reason_text += " (caller unidentified: " + problem + ")";
  return http_response(403, "Forbidden",
                       json_denial(decision, host, port, chain.empty() ? "" : chain.front()),
                       decision.rule);
}

}  // namespace

void SessionRunner::arm_deadline(std::shared_ptr<Session> s,
                                 std::chrono::milliseconds after) {
  s->timer.expires_after(after);
  s->timer.async_wait([s](const error_code& ec) {
    if (!ec) s->close();
  });
}

std::vector<std::string> SessionRunner::identify(Session& s,
                                                 const tcp::endpoint& server,
                                                 std::string* problem) {
  error_code ec;
  auto peer = s.client.remote_endpoint(ec);
  if (ec) {
    *problem = "peer address unavailable";
    return {};
  }
  auto who = identify_peer(config_.sandbox_init, config_.procs_file, to_sockaddr(peer),
                           to_sockaddr(server), config_.diag_fd, config_.tracker.get());
  if (!who) {
    *problem = who.error().message();
    return {};
  }
  s.pid = who->pid;
  return who->chain;
}

awaitable<std::vector<IpAddress>> SessionRunner::resolve(const std::string& host) {
  if (auto literal = parse_ip(host); literal.ok()) co_return std::vector<IpAddress>{*literal};
  std::string bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']')
    bare = bare.substr(1, bare.size() - 2);
  if (auto literal = parse_ip(bare); literal.ok()) co_return std::vector<IpAddress>{*literal};
  if (config_.lookup)
    if (auto known = config_.lookup(bare)) co_return std::move(*known);
  co_return co_await asio::co_spawn(impl_.resolver_pool.executor(),
                                    resolve_blocking(config_.resolve, bare),
                                    use_awaitable);
}

ocsf::ConnectionInfo SessionRunner::connection_info(const Session& s, const egress::Decision& d,
                                                   const std::string& address,
                                                   bool allowed) const {
  ocsf::ConnectionInfo c;
  c.host = d.host.empty() ? s.host : d.host;
  c.port = s.port;
  c.address = address;
  error_code ec;
  if (auto peer = s.client.remote_endpoint(ec); !ec) {
    c.src_address = peer.address().to_string();
    c.src_port = peer.port();
  }
  c.pid = s.pid;
  c.binary = s.chain.empty() ? "" : s.chain.front();
  // Who the process is on the host (its /proc directory is owned by its effective uid): the
  // sandbox's owner, or a root sandbox's own id.
  if (struct stat st {}; s.pid > 0 && ::stat(("/proc/" + std::to_string(s.pid)).c_str(), &st) == 0)
    c.uid = st.st_uid;
  c.allowed = allowed;
  c.audit = d.audit_only;
  c.rule = d.rule;
  c.reason = allowed && !d.audit_only ? "" : std::string(egress::to_string(d.reason));
  c.detail = d.reason_text;
  c.mode = s.mode;
  c.protocol = "tcp";
  return c;
}

void SessionRunner::emit(const Session& s, const egress::Decision& d, const std::string& address,
                         bool allowed) {
  if (config_.events == nullptr) return;
  const ocsf::ConnectionInfo c = connection_info(s, d, address, allowed);
  // A captured connection the policy refuses is a bypass attempt: one Detection Finding, which
  // carries everything the Network Activity would have (not both for one connection).
  if (!allowed && s.mode == "transparent")
    config_.events->emit(ocsf::bypass_finding(config_.sandbox, c));
  else
    config_.events->emit(ocsf::network_activity(config_.sandbox, c));
}

awaitable<Dialed> SessionRunner::decide_and_dial(Session& s, const std::string& host,
                                                 uint16_t port) {
  Dialed out;
  auto policy = config_.policy();
  s.host = host;
  s.port = port;
  egress::ConnectRequest request{host, port, s.chain};
  out.decision = egress::decide(*policy, request);
  if (out.decision.verdict != egress::Verdict::kAllow) {
    emit(s, out.decision, "", false);
    co_return out;
  }
  auto addresses = co_await resolve(out.decision.host);
  std::vector<IpAddress> dial;
  auto checked = egress::check_addresses(out.decision, addresses, port, &dial);
  if (checked.verdict != egress::Verdict::kAllow) {
    out.decision = checked;
    emit(s, out.decision, addresses.empty() ? "" : to_string(addresses.front()), false);
    co_return out;
  }
  out.decision = checked;
  error_code ec;
  if (config_.upstream_proxy) {
    const std::string why = co_await dial_through_proxy(s, out.decision.host, port);
    if (!why.empty()) {
      out.status = 502;
      out.decision.reason_text = why;
      emit(s, out.decision, "", false);
      co_return out;
    }
    out.address = config_.upstream_proxy->host + ":" + std::to_string(config_.upstream_proxy->port);
  } else {
    // Only the addresses we checked, in order, each within the connect timeout.
    ec = co_await connect_any(s, dial, port, &out.address);
  }
  if (ec) {
    out.status = 502;
    out.decision.reason_text = "upstream unreachable: " + ec.message();
    emit(s, out.decision, dial.empty() ? "" : to_string(dial.front()), false);
    co_return out;
  }
  out.ok = true;
  s.established = true;
  s.address = out.address;
  emit(s, out.decision, out.address, true);
  co_return out;
}

void SessionRunner::cancel_upstream_at(Session& s, asio::steady_timer& deadline) {
  deadline.expires_after(std::chrono::seconds(config_.limits.connect_timeout_s));
  deadline.async_wait([upstream = &s.upstream](const error_code& e) {
    if (!e) {
      error_code ignored;
      upstream->cancel(ignored);
    }
  });
}

awaitable<error_code> SessionRunner::connect_any(Session& s, const std::vector<IpAddress>& addresses,
                                                uint16_t port, std::string* connected) {
  error_code ec = asio::error::host_unreachable;
  for (const auto& ip : addresses) {
    if (s.closed) break;
    ec = co_await connect_within(s, tcp::endpoint(to_asio(ip), port));
    if (!ec) {
      if (connected != nullptr) *connected = to_string(ip);
      break;
    }
  }
  co_return ec;
}

awaitable<error_code> SessionRunner::connect_within(Session& s, tcp::endpoint to) {
  s.upstream = tcp::socket(io_);
  asio::steady_timer deadline(io_);
  cancel_upstream_at(s, deadline);
  error_code ec;
  co_await s.upstream.async_connect(to, asio::redirect_error(use_awaitable, ec));
  deadline.cancel();
  // What we write is what came: a small write waiting for an ACK (Nagle against the peer's
  // delayed ACK) would hold an SSE event or a response head for 40 ms.
  error_code ignored;
  if (!ec) s.upstream.set_option(tcp::no_delay(true), ignored);
  co_return ec;
}

awaitable<std::string> SessionRunner::dial_through_proxy(Session& s, const std::string& host,
                                                        uint16_t port) {
  const UpstreamProxy& proxy = *config_.upstream_proxy;
  const std::string named = "upstream proxy " + proxy.host + ":" + std::to_string(proxy.port);
  const auto addresses = co_await resolve(proxy.host);
  error_code ec = co_await connect_any(s, addresses, proxy.port, nullptr);
  if (ec) co_return named + " unreachable: " + ec.message();
  const std::string authority =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  const std::string request =
      "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
  co_await asio::async_write(s.upstream, asio::buffer(request),
                             asio::redirect_error(use_awaitable, ec));
  if (ec) co_return named + ": " + ec.message();
  // The answer's head alone: the tunnel's bytes come after it, and none may be taken here.
  beast::flat_buffer answer;
  asio::steady_timer deadline(io_);
  cancel_upstream_at(s, deadline);
  const size_t n = co_await read_head(s.upstream, answer, config_.limits.max_header_bytes);
  deadline.cancel();
  if (n == 0 || n == SIZE_MAX) co_return named + " sent no answer to CONNECT";
  if (answer.size() != n) co_return named + " sent tunnel data before its answer ended";
  http::response_parser<http::empty_body> parser;
  parser.skip(true);
  parser.put(asio::buffer(answer.data().data(), n), ec);
  if (!parser.is_header_done()) co_return named + " sent a malformed answer to CONNECT";
  const unsigned status = parser.get().result_int();
  if (status < 200 || status > 299)
    co_return named + " refused CONNECT " + authority + ": " + std::to_string(status);
  co_return "";
}

// Whatever the client sends first (TLS ClientHello, an HTTP head), up to the peek deadline.
awaitable<std::string> SessionRunner::read_initial(Session& s, std::string already) {
  std::string data = std::move(already);
  asio::steady_timer timer(io_);
  timer.expires_after(std::chrono::milliseconds(config_.limits.peek_timeout_ms));
  bool timed_out = false;
  auto* client = &s.client;
  timer.async_wait([client, &timed_out](const error_code& e) {
    if (!e) {
      timed_out = true;
      error_code ignored;
      client->cancel(ignored);
    }
  });
  while (data.size() < tls::kMaxPeekBytes && !s.closed) {
    if (!data.empty()) {
      auto peek = tls::peek_client_hello(
          std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
      if (peek.status != tls::PeekStatus::kNeedMore) break;
    }
    char buf[4096];
    error_code ec;
    size_t n = co_await s.client.async_read_some(asio::buffer(buf),
                                                 asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    data.append(buf, n);
  }
  timer.cancel();
  (void)timed_out;
  co_return data;
}

// One direction of a tunnel. The bytes go socket -> pipe -> socket with splice(2), so they
// never cross into this process; a copy through a buffer is the fallback when no pipe can be
// had (the open-file limit).
awaitable<void> SessionRunner::pump(std::shared_ptr<Session> s,
                                    bool upstream_to_client) {
  tcp::socket& from = upstream_to_client ? s->upstream : s->client;
  tcp::socket& to = upstream_to_client ? s->client : s->upstream;
  error_code ec;
  from.native_non_blocking(true, ec);
  if (!ec) to.native_non_blocking(true, ec);
  auto pipe = sys::make_pipe(O_NONBLOCK);
  if (pipe.ok() && !ec) {
    const int in = from.native_handle();
    const int out = to.native_handle();
    const int pipe_read = (*pipe)[0].get();
    const int pipe_write = (*pipe)[1].get();
    // A larger pipe moves more per wake-up; the default (64 KiB) is kept if this fails.
    const int pipe_size = ::fcntl(pipe_write, F_SETPIPE_SZ, static_cast<int>(kPipeBuffer));
    const size_t chunk = pipe_size > 0 ? static_cast<size_t>(pipe_size) : kRelayBuffer;
    constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    bool open = true;
    while (open && !s->closed) {
      // The pipe is empty here, so EAGAIN means the socket has nothing to read.
      const ssize_t got = ::splice(in, nullptr, pipe_write, nullptr, chunk, kFlags);
      if (got < 0 && errno == EAGAIN) {
        co_await from.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
        open = !ec;
        continue;
      }
      if (got <= 0) break;  // EOF or an error
      s->last_activity = std::chrono::steady_clock::now();
      // The pipe holds data here, so EAGAIN means the socket cannot take more yet.
      for (auto left = static_cast<size_t>(got); left > 0 && open && !s->closed;) {
        const ssize_t put = ::splice(pipe_read, nullptr, out, nullptr, left, kFlags);
        if (put < 0 && errno == EAGAIN) {
          co_await to.async_wait(tcp::socket::wait_write, asio::redirect_error(use_awaitable, ec));
          open = !ec;
        } else if (put <= 0) {
          open = false;
        } else {
          left -= static_cast<size_t>(put);
        }
      }
    }
  } else {
    co_await copy_stream(s, from, to);
  }
  error_code ignored;
  to.shutdown(tcp::socket::shutdown_send, ignored);
  if (--s->pumps == 0) s->close();
}

// The upstream -> client pump; the count of two includes the client -> upstream pump that
// relay() starts, so the session is not closed before that one ran.
void SessionRunner::start_downstream(const std::shared_ptr<Session>& s) {
  s->pumps = 2;
  asio::co_spawn(io_, pump(s, true), [](std::exception_ptr) {});
}

awaitable<void> SessionRunner::relay(std::shared_ptr<Session> s,
                                     std::string to_upstream, bool upstream_flowing) {
  if (!upstream_flowing) start_downstream(s);
  if (!to_upstream.empty()) {
    error_code ec;
    co_await asio::async_write(s->upstream, asio::buffer(to_upstream),
                               asio::redirect_error(use_awaitable, ec));
    if (ec) {
      s->close();
      co_return;
    }
  }
  asio::co_spawn(io_, pump(s, false), [](std::exception_ptr) {});
  // Idle watchdog: a tunnel nobody uses is closed.
  const auto idle = std::chrono::seconds(config_.limits.idle_timeout_s);
  while (!s->closed) {
    s->timer.expires_after(idle);
    error_code ec;
    co_await s->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (s->closed) break;
    if (std::chrono::steady_clock::now() - s->last_activity >= idle) s->close();
  }
}

awaitable<void> SessionRunner::send_and_close(std::shared_ptr<Session> s,
                                              std::string response) {
  error_code ec;
  co_await asio::async_write(s->client, asio::buffer(response),
                             asio::redirect_error(use_awaitable, ec));
  s->close();
}

awaitable<void> SessionRunner::run_explicit(std::shared_ptr<Session> s) {
  beast::flat_buffer buffer;
  beast::flat_buffer upstream_buffer;
  const auto body_buffer = std::make_unique_for_overwrite<char[]>(kRelayBuffer);
  const std::span<char> body(body_buffer.get(), kRelayBuffer);
  std::string upstream_key;  // host:port the upstream socket serves (forwarding)
  // GCC 12 mishandles temporaries that live across a co_await (double destruction): every
  // response is built into a named local before it is sent.
  std::string response;
  std::string problem;
  std::string head;
  bool identified = false;
  // One decision per request: a kept-alive connection may name another host next time.
  for (;;) {
    http::request_parser<http::buffer_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(config_.limits.max_header_bytes));
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // streamed, never held whole
    arm_deadline(s, std::chrono::seconds(identified ? config_.limits.idle_timeout_s
                                                    : config_.limits.header_timeout_s));
    error_code ec;
    const size_t head_size = co_await read_head(s->client, buffer, config_.limits.max_header_bytes);
    s->timer.cancel();
    if (head_size == SIZE_MAX) {
      response = simple_error(431, "Request Header Fields Too Large", "request head too large");
      co_await send_and_close(s, std::move(response));
      co_return;
    }
    if (head_size == 0) {
      s->close();
      co_return;
    }
    head.assign(static_cast<const char*>(buffer.data().data()), head_size);
    buffer.consume(head_size);
    parser.put(asio::buffer(head), ec);
    if (ec || !parser.is_header_done()) {
      response = simple_error(400, "Bad Request", "malformed request head");
      co_await send_and_close(s, std::move(response));
      co_return;
    }
    if (!identified) {
      error_code lec;
      auto local = s->client.local_endpoint(lec);
      s->chain = identify(*s, local, &problem);
      identified = true;
    }
    auto& req = parser.get();
    std::string host;
    uint16_t port = 0;
    if (req.method() == http::verb::connect) {
      s->mode = "connect";
      if (!net::split_authority(std::string_view(req.target().data(), req.target().size()), &host, &port,
                           0)) {
        response = simple_error(400, "Bad Request", "CONNECT needs host:port");
        co_await send_and_close(s, std::move(response));
        co_return;
      }
      error_code ignored;
      s->upstream.close(ignored);
      if (net::check_host(host).host == capture::kInferenceHost) {
        // The privacy router, before any policy.
        response = "HTTP/1.1 200 Connection Established\r\n\r\n";
        co_await asio::async_write(s->client, asio::buffer(response),
                                   asio::redirect_error(use_awaitable, ec));
        if (ec) {
          s->close();
          co_return;
        }
        std::string leftover(static_cast<const char*>(buffer.data().data()), buffer.size());
        std::string initial = co_await read_initial(*s, std::move(leftover));
        co_await serve_inference(s, std::move(initial));
        co_return;
      }
      co_await tunnel(s, host, port, buffer, problem);
      co_return;
    }
    s->mode = "forward";
    std::string_view target(req.target().data(), req.target().size());
    if (target.rfind("https://", 0) == 0) {
      response = simple_error(400, "Bad Request", "use CONNECT for https:// destinations");
      co_await send_and_close(s, std::move(response));
      co_return;
    }
    if (target.rfind("http://", 0) != 0) {
      response = simple_error(400, "Bad Request",
                              "this is a proxy: send an absolute http:// URL or CONNECT");
      co_await send_and_close(s, std::move(response));
      co_return;
    }
    std::string_view rest = target.substr(7);
    auto slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    std::string path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (!path.empty() && path.front() == '?') path = "/" + path;
    if (authority.find('@') != std::string_view::npos ||
        !net::split_authority(authority, &host, &port, 80)) {
      response = simple_error(400, "Bad Request", "bad authority in request URL");
      co_await send_and_close(s, std::move(response));
      co_return;
    }
    if (net::check_host(host).host == capture::kInferenceHost) {
      // The privacy router takes the connection, this request first.
      std::string initial = head + std::string(static_cast<const char*>(buffer.data().data()),
                                               buffer.size());
      co_await serve_inference(s, std::move(initial));
      co_return;
    }
    const std::string key = host + ":" + std::to_string(port);
    if (key != upstream_key || !s->upstream.is_open()) {
      error_code ignored;
      s->upstream.close(ignored);
      s->established = false;
      upstream_buffer.consume(upstream_buffer.size());
      upstream_key.clear();
      auto dialed = co_await decide_and_dial(*s, host, port);
      if (!dialed.ok) {
        response = refusal(dialed, host, port, s->chain, problem);
        co_await send_and_close(s, std::move(response));
        co_return;
      }
      upstream_key = key;
    }
    // Framing, Host and (on an inspected endpoint) the rules, as for a terminated connection.
    RequestCheck check = check_request(*s, head, req, path);
    if (check.status == 0) {
      req.target(check.target);
      resolve_credentials(*s, req, check);  // its refusal has its events
    } else {
      emit_http(*s, check, check.status);
    }
    if (check.status != 0) {
      response = refusal_response(check, false);
      co_await send_and_close(s, std::move(response));
      co_return;
    }
    // On in origin form, without the headers that were for us.
    req.erase(http::field::proxy_authorization);
    req.erase("Proxy-Connection");
    req.erase(http::field::keep_alive);
    const bool client_keeps = req.keep_alive();
    const bool head_request = req.method() == http::verb::head;
    if (check.body_rewrite && !parser.is_done()) {
      if (!co_await send_rewritten_body(s, s->client, buffer, parser, s->upstream, body, check)) {
        s->close();
        co_return;
      }
    } else {
      http::serializer<true, http::buffer_body> sr{req};
      ec = co_await relay_message(s->client, buffer, parser, s->upstream, sr, body);
      if (ec) {
        s->close();
        co_return;
      }
    }
    http::response_parser<http::buffer_body> rp;
    rp.header_limit(static_cast<std::uint32_t>(config_.limits.max_header_bytes));
    rp.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (head_request) rp.skip(true);
    arm_deadline(s, std::chrono::seconds(config_.limits.idle_timeout_s));
    co_await http::async_read_header(s->upstream, upstream_buffer, rp,
                                     asio::redirect_error(use_awaitable, ec));
    s->timer.cancel();
    if (ec) {
      response =
          simple_error(502, "Bad Gateway", "upstream sent no valid response head: " + ec.message());
      co_await send_and_close(s, std::move(response));
      co_return;
    }
    // Connection persistence is hop-by-hop: the upstream closing its side does not end the
    // client's, as long as the client can tell where this answer ends without an EOF.
    auto& res = rp.get();
    const bool upstream_keeps = res.keep_alive();
    const bool delimited = rp.is_done() || rp.chunked() || rp.content_length().has_value();
    const bool keep_client = client_keeps && delimited;
    res.keep_alive(keep_client);
    res.erase(http::field::keep_alive);
    s->last_activity = std::chrono::steady_clock::now();
    if (check.inspected) emit_http(*s, check, res.result_int());
    http::serializer<false, http::buffer_body> rsr{res};
    ec = co_await relay_message(s->upstream, upstream_buffer, rp, s->client, rsr, body);
    if (ec || !keep_client || s->closed) {
      s->close();
      co_return;
    }
    if (!upstream_keeps) {
      error_code ignored;
      s->upstream.close(ignored);
      s->established = false;
      upstream_key.clear();
    }
  }
}

awaitable<void> SessionRunner::tunnel(std::shared_ptr<Session> s,
                                      const std::string& host, uint16_t port,
                                      beast::flat_buffer& buffer, const std::string& problem) {
  std::string response;
  auto dialed = co_await decide_and_dial(*s, host, port);
  if (!dialed.ok) {
    response = refusal(dialed, host, port, s->chain, problem);
    co_await send_and_close(s, std::move(response));
    co_return;
  }
  // Bytes the client sent after the head (an eager TLS hello).
  std::string leftover(static_cast<const char*>(buffer.data().data()), buffer.size());
  const std::string established = "HTTP/1.1 200 Connection Established\r\n\r\n";
  error_code wec;
  co_await asio::async_write(s->client, asio::buffer(established),
                             asio::redirect_error(use_awaitable, wec));
  if (wec) {
    s->close();
    co_return;
  }
  // No domain fronting: a TLS hello inside the tunnel must name the host the tunnel was
  // allowed for, so nothing the client sends goes upstream before it was looked at. What the
  // upstream sends flows at once: a server-first protocol (SSH, SMTP) gets its banner through
  // without waiting out the peek, and a TLS server says nothing before the hello anyway. An
  // inspected endpoint's upstream speaks only to the inspection.
  const bool inspected = inspects(dialed.decision.endpoint);
  if (!inspected) start_downstream(s);
  std::string initial = co_await read_initial(*s, std::move(leftover));
  auto peek = tls::peek_client_hello(
      std::span(reinterpret_cast<const uint8_t*>(initial.data()), initial.size()));
  if (peek.status == tls::PeekStatus::kMalformed ||
      (peek.status == tls::PeekStatus::kSni && peek.sni != dialed.decision.host)) {
    egress::Decision d = dialed.decision;
    d.verdict = egress::Verdict::kDeny;
    d.reason = peek.status == tls::PeekStatus::kSni ? egress::DenyReason::kNameMismatch
                                                    : egress::DenyReason::kInvalidHost;
    d.reason_text = peek.status == tls::PeekStatus::kSni
                        ? "TLS server name " + peek.sni + " does not match the tunnel's host " +
                              dialed.decision.host
                        : "malformed TLS ClientHello";
    s->established = false;
    emit(*s, d, dialed.address, false);
    s->reset();
    co_return;
  }
  if (inspected) {
    co_await inspect(s, std::move(initial));
    co_return;
  }
  co_await relay(s, std::move(initial), true);
}

awaitable<void> SessionRunner::run_transparent(std::shared_ptr<Session> s) {
  s->mode = "transparent";
  sockaddr_in original{};
  socklen_t len = sizeof original;
  if (::getsockopt(s->client.native_handle(), SOL_IP, kSoOriginalDst, &original, &len) != 0) {
    s->reset();
    co_return;
  }
  const tcp::endpoint original_ep(asio::ip::address_v4(ntohl(original.sin_addr.s_addr)),
                                  ntohs(original.sin_port));
  const IpAddress original_ip = to_ip(original_ep.address());
  const uint16_t port = original_ep.port();

  // The name: from the TLS SNI or the HTTP Host header, and from what our DNS told the
  // sandbox this address was. When both exist they must agree.
  std::string nothing_yet;
  std::string initial = co_await read_initial(*s, std::move(nothing_yet));
  if (to_string(original_ip) == capture::kInferenceAddressText) {
    std::string problem;
    s->chain = identify(*s, original_ep, &problem);
    co_await serve_inference(s, std::move(initial));
    co_return;
  }
  std::string said;
  auto peek = tls::peek_client_hello(
      std::span(reinterpret_cast<const uint8_t*>(initial.data()), initial.size()));
  if (peek.status == tls::PeekStatus::kSni) {
    said = peek.sni;
  } else if (peek.status == tls::PeekStatus::kNotTls && !initial.empty()) {
    http::request_parser<http::empty_body> p;
    p.header_limit(static_cast<std::uint32_t>(config_.limits.max_header_bytes));
    error_code pec;
    p.put(asio::buffer(initial), pec);
    if (p.is_header_done()) {
      auto it = p.get().find(http::field::host);
      if (it != p.get().end()) {
        std::string h;
        uint16_t ignored_port = 0;
        if (net::split_authority(std::string_view(it->value().data(), it->value().size()), &h,
                            &ignored_port, port))
          said = h;
      }
    }
  }
  const auto pinned = config_.pins ? config_.pins->name_for(original_ip) : std::nullopt;
  std::string host;
  std::string problem;
  s->chain = identify(*s, original_ep, &problem);
  if (!said.empty()) {
    auto checked = net::check_host(said);
    if (pinned && checked.host != *pinned) {
      egress::Decision d;
      d.reason = egress::DenyReason::kNameMismatch;
      d.host = checked.host;
      d.reason_text = "server name " + checked.host + " does not match the DNS name " + *pinned +
                      " for " + to_string(original_ip);
      s->host = checked.host;
      s->port = port;
      emit(*s, d, to_string(original_ip), false);
      s->reset();
      co_return;
    }
    host = said;
  } else if (pinned) {
    host = *pinned;
  } else {
    host = to_string(original_ip);
  }
  auto dialed = co_await decide_and_dial(*s, host, port);
  if (!dialed.ok) {
    s->reset();
    co_return;
  }
  if (inspects(dialed.decision.endpoint)) {
    co_await inspect(s, std::move(initial));
    co_return;
  }
  co_await relay(s, std::move(initial));
}

void SessionRunner::reevaluate() {
  auto policy = config_.policy();
  for (const auto& s : impl_.sessions) {
    if (!s->established || s->closed) continue;
    auto d = egress::decide(*policy, {s->host, s->port, s->chain});
    if (d.verdict == egress::Verdict::kAllow) continue;
    d.reason_text = "policy changed: " + d.reason_text;
    emit(*s, d, "", false);
    s->close();
  }
}

ProxyServer::ProxyServer(asio::io_context& io, ProxyConfig config, int explicit_fd,
                         int transparent_fd)
    : io_(io),
      config_(std::move(config)),
      impl_(std::make_unique<Impl>(io, explicit_fd, transparent_fd)) {}

ProxyServer::~ProxyServer() {
  for (const auto& s : impl_->sessions) s->close();
  impl_->resolver_pool.stop();
}

void ProxyServer::start() {
  accept_loop(false);
  accept_loop(true);
}

void ProxyServer::accept_loop(bool transparent) {
  auto self = shared_from_this();
  tcp::acceptor& acceptor = transparent ? impl_->transparent_acceptor : impl_->explicit_acceptor;
  acceptor.async_accept([self, transparent](const error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of file descriptors or memory: accepting again at once would only spin. The
      // connection waits in the backlog meanwhile.
      log::warn("proxy", "accept failed, retrying in 100 ms: " + ec.message());
      auto pause = std::make_shared<asio::steady_timer>(self->io_, std::chrono::milliseconds(100));
      pause->async_wait([self, pause, transparent](const error_code&) {
        self->accept_loop(transparent);
      });
      return;
    }
    {
      if (self->impl_->sessions.size() >= self->config_.limits.max_connections) {
        error_code ignored;
        socket.set_option(asio::socket_base::linger(true, 0), ignored);
        socket.close(ignored);
      } else {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);  // as connect_within's
        auto s = std::make_shared<Session>(std::move(socket));
        self->impl_->sessions.insert(s);
        auto runner = std::make_shared<SessionRunner>(*self->impl_, self->config_, self->io_);
        auto work = transparent ? runner->run_transparent(s) : runner->run_explicit(s);
        asio::co_spawn(self->io_, std::move(work), [self, s, runner](std::exception_ptr e) {
          if (e) {
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              log::debug("proxy", std::string("session ended: ") + ex.what());
            }
          }
          // The relay may still run (pumps); they close the session when done.
          if (s->pumps == 0) s->close();
          self->impl_->sessions.erase(s);
        });
      }
    }
    self->accept_loop(transparent);
  });
}

void ProxyServer::policy_changed() { SessionRunner(*impl_, config_, io_).reevaluate(); }

}  // namespace openshell::supervisor::proxy
