// The privacy router (DESIGN.md §5; issue 16 items 6-10): https://inference.local and
// http://inference.local, served by the proxy itself before any policy. Each request is one of
// the calls core/inference knows; the sandbox's routes (core/services, as the daemon sent them)
// are filtered by its privacy rule, the call's API and the requested model, then tried in order
// of locality and cost: a backend that refuses the connection or answers 5xx before the agent
// got a byte gives way to the next. The caller's credentials are dropped, the route's
// provider's key put in, `model` rewritten, and the answer streams back as it comes (SSE event
// by event). Every call is an API Activity event.
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/string_body.hpp>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/capture.hpp"
#include "core/log.hpp"
#include "core/net_guard.hpp"
#include "core/tls_peek.hpp"
#include "supervisor/proxy/session.hpp"
#include "supervisor/proxy/tls_contexts.hpp"

namespace openshell::supervisor::proxy {
namespace {

namespace ssl = asio::ssl;
using Clock = std::chrono::steady_clock;

// Fields of the agent's request that never reach a backend: its own credentials (the route's
// provider's key replaces them), hop-by-hop fields, and Accept-Encoding (the router reads the
// answer's `usage`).
constexpr std::string_view kDropped[] = {
    "authorization", "x-api-key",  "api-key",  "proxy-authorization", "host",
    "connection",    "keep-alive", "te",       "trailer",             "transfer-encoding",
    "upgrade",       "proxy-connection",       "content-length",      "accept-encoding",
    "expect"};

bool dropped(std::string_view name) {
  for (const auto d : kDropped)
    if (beast::iequals(beast::string_view(name.data(), name.size()),
                       beast::string_view(d.data(), d.size())))
      return true;
  return false;
}

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

std::string error_body(std::string_view error, std::string_view reason) {
  return nlohmann::json{{"error", error}, {"reason", reason}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The token counts of an answer as it streams past: SSE `data:` lines that mention usage, or
// (any other body) the whole body at its end, up to kMaxUsageBody.
class UsageTap {
 public:
  static constexpr size_t kMaxUsageBody = 1 << 20;
  explicit UsageTap(bool sse) : sse_(sse) {}
  void operator()(std::string_view data) {
    if (!sse_) {
      if (body_.size() + data.size() <= kMaxUsageBody) body_.append(data);
      else overflow_ = true;
      return;
    }
    line_.append(data);
    size_t start = 0;
    for (size_t nl; (nl = line_.find('\n', start)) != std::string::npos; start = nl + 1)
      take_line(std::string_view(line_).substr(start, nl - start));
    line_.erase(0, start);
    if (line_.size() > kMaxUsageBody) line_.clear();  // one absurd line: not ours to read
  }
  std::optional<inference::Usage> finish() {
    if (!sse_ && !overflow_) merge(inference::usage_of(body_));
    return usage_;
  }

 private:
  void take_line(std::string_view line) {
    if (line.substr(0, 5) != "data:" || line.find("usage") == std::string_view::npos) return;
    merge(inference::usage_of(line.substr(5)));
  }
  void merge(std::optional<inference::Usage> u) {
    if (!u) return;
    if (!usage_) usage_ = inference::Usage{};
    usage_->input = std::max(usage_->input, u->input);
    usage_->output = std::max(usage_->output, u->output);
  }
  bool sse_;
  bool overflow_ = false;
  std::string line_;
  std::string body_;
  std::optional<inference::Usage> usage_;
};

// What the router does with a call before any backend: answer it itself (`status` set: 404 for
// a path it does not serve, 200 for the models list, 400 when no route may serve it), or try
// `candidates` in order.
struct CallPlan {
  int status = 0;
  std::string phrase;
  std::string body;
  std::vector<const inference::Route*> candidates;
};

CallPlan plan_call(std::string_view method, const std::string& path, const std::string& body,
                   const services::Services& svc, ocsf::InferenceInfo& info) {
  CallPlan plan;
  const auto refuse = [&](int status, std::string phrase, std::string_view error,
                          const std::string& reason) {
    plan.status = status;
    plan.phrase = std::move(phrase);
    plan.body = error_body(error, reason);
    info.status = status;
    info.error = std::string(error);
    info.reason = reason;
    return plan;
  };
  const auto call = inference::classify(method, path);
  if (!call) {
    info.call = "unknown";
    return refuse(404, "Not Found", "not_found",
                  std::string(method.substr(0, 16)) + " " + path.substr(0, 256) +
                      " is not a call inference.local serves");
  }
  static constexpr std::string_view kCalls[] = {"chat_completions", "completions", "responses",
                                                "embeddings",       "models",      "messages"};
  info.call = std::string(kCalls[static_cast<size_t>(*call)]);
  if (*call == inference::Call::kModels) {
    std::vector<const inference::Route*> listed;
    for (const auto& r : svc.routes)
      if (svc.privacy != inference::Privacy::kLocalOnly || r.locality == inference::Locality::kLocal)
        listed.push_back(&r);
    plan.status = info.status = 200;
    plan.phrase = "OK";
    plan.body = inference::models_list(listed);
    return plan;
  }
  const auto requested = inference::requested_model(body);
  if (!requested) return refuse(400, "Bad Request", "bad_request", requested.error().message());
  info.requested_model = requested->value_or("");
  const auto api = inference::api_of(*call);
  plan.candidates = inference::candidates(svc.routes, svc.privacy, api, *requested);
  if (plan.candidates.empty())
    return refuse(400, "Bad Request", "no_route",
                  "no route of this sandbox serves " + std::string(inference::to_string(api)) +
                      " calls" +
                      (*requested ? " for model " + (*requested)->substr(0, 128) : std::string()) +
                      " under privacy " + std::string(inference::to_string(svc.privacy)) + " (" +
                      std::to_string(svc.routes.size()) + " routes)");
  return plan;
}

// One call in flight, counted while it lives.
class CallSlot {
 public:
  explicit CallSlot(size_t& count) : count_(count) { ++count_; }
  ~CallSlot() { --count_; }
  CallSlot(const CallSlot&) = delete;
  CallSlot& operator=(const CallSlot&) = delete;

 private:
  size_t& count_;
};

}  // namespace

// One call's try at one route: what the agent got from it, or why the next route is tried.
struct SessionRunner::Attempt {
  bool answered = false;  // the agent has the backend's answer (whatever its status)
  bool keep = false;      // and the connection to the agent stays
  int status = 0;
  std::string failure;    // when !answered: "route: why"
  int64_t first_byte_ms = -1;
  std::optional<inference::Usage> usage;
};

// The backend connection of one agent connection, kept between its calls while the backend
// keeps it (s.upstream, with TLS over it for an https:// route).
struct SessionRunner::Backend {
  std::string key;  // "https://host:port" it is connected to; "" when none
  std::unique_ptr<ssl::stream<tcp::socket&>> tls;
  beast::flat_buffer buffer;
};

awaitable<void> SessionRunner::serve_inference(std::shared_ptr<Session> s, std::string initial) {
  s->host = capture::kInferenceHost;
  const auto peek = tls::peek_client_hello(
      std::span(reinterpret_cast<const uint8_t*>(initial.data()), initial.size()));
  if (peek.status == tls::PeekStatus::kNotTls || initial.empty()) {
    s->port = 80;
    beast::flat_buffer cbuf;
    cbuf.commit(asio::buffer_copy(cbuf.prepare(initial.size()), asio::buffer(initial)));
    co_await route_calls(s, s->client, cbuf);
    co_return;
  }
  s->port = 443;
  if (peek.status != tls::PeekStatus::kSni && peek.status != tls::PeekStatus::kNoSni) {
    s->reset();
    co_return;
  }
  auto context = config_.tls ? config_.tls->agent()
                             : Result<ssl::context*>(Error::invalid("no TLS termination here"));
  if (!context) {
    log::error("proxy", context.error().wrap("inference.local over TLS").message());
    s->reset();
    co_return;
  }
  Replayed replayed(s->client, std::move(initial));
  ssl::stream<Replayed&> client(replayed, **context);
  const auto accepted = co_await accept_tls(s, client, capture::kInferenceHost);
  if (!accepted || *accepted) {
    s->reset();
    co_return;
  }
  beast::flat_buffer cbuf;
  co_await route_calls(s, client, cbuf);
}

template <class Client>
awaitable<void> SessionRunner::route_calls(std::shared_ptr<Session> s, Client& client,
                                           beast::flat_buffer& cbuf) {
  Backend backend;
  std::string response;
  while (!s->closed) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(config_.limits.max_header_bytes));
    parser.body_limit(inference::kMaxRequestBody);
    arm_deadline(s, std::chrono::seconds(config_.limits.idle_timeout_s));
    error_code ec;
    co_await http::async_read_header(client, cbuf, parser, asio::redirect_error(use_awaitable, ec));
    if (!ec && impl_.inference_calls >= ProxyServer::Impl::kMaxInferenceCalls) {
      // Each call in flight holds its whole request: a bounded number of them.
      response = http_response(503, "Service Unavailable",
                               error_body("busy", "too many inference.local calls at once (" +
                                                      std::to_string(ProxyServer::Impl::kMaxInferenceCalls) +
                                                      "); try again"),
                               "");
      co_await asio::async_write(client, asio::buffer(response),
                                 asio::redirect_error(use_awaitable, ec));
      break;
    }
    const CallSlot slot(impl_.inference_calls);
    if (!ec && !parser.is_done() && beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      // The body is ours to read whole: the client may send it now (curl waits a second
      // otherwise).
      response = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(client, asio::buffer(response),
                                 asio::redirect_error(use_awaitable, ec));
    }
    if (!ec && !parser.is_done())
      co_await http::async_read(client, cbuf, parser, asio::redirect_error(use_awaitable, ec));
    s->timer.cancel();
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::operation_aborted || (ec && cbuf.size() == 0 && !parser.got_some()))
      break;
    if (ec) {
      const bool too_large = ec == http::error::body_limit;
      response = http_response(too_large ? 413 : 400, too_large ? "Payload Too Large" : "Bad Request",
                               error_body(too_large ? "payload_too_large" : "bad_request",
                                          too_large ? "a call's body is at most 10 MiB"
                                                    : "malformed request: " + ec.message()),
                               "");
      co_await asio::async_write(client, asio::buffer(response),
                                 asio::redirect_error(use_awaitable, ec));
      break;
    }
    const bool keep = co_await route_call(s, client, parser.get(), backend);
    if (!keep) break;
  }
  s->close();
}

template <class Client>
awaitable<bool> SessionRunner::route_call(std::shared_ptr<Session> s, Client& client,
                                          http::request<http::string_body>& req,
                                          Backend& backend) {
  const auto started = Clock::now();
  ocsf::InferenceInfo info;
  std::string target(sv(req.target()));
  bool other_host = false;
  if (target.rfind("http://", 0) == 0) {  // absolute form, from the explicit proxy
    const size_t path = target.find_first_of("/?", 7);
    std::string authority = target.substr(7, path == std::string::npos ? path : path - 7);
    std::string named;
    uint16_t port = 0;
    other_host = !net::split_authority(authority, &named, &port, 80) ||
                 net::check_host(named).host != capture::kInferenceHost;
    target = path == std::string::npos ? "/" : target.substr(path);
  }
  const std::string path = target.substr(0, target.find('?'));
  const bool client_keeps = req.keep_alive();
  auto services = config_.services ? config_.services() : nullptr;
  if (!services) services = std::make_shared<const services::Services>();
  CallPlan plan = plan_call(sv(req.method_string()), path, req.body(), *services, info);
  if (other_host) {
    // A connection the router took serves inference.local alone.
    plan = CallPlan{400, "Bad Request",
                    error_body("bad_request", "this connection is inference.local's: open another"),
                    {}};
    info.status = 400;
    info.error = "bad_request";
  }
  for (size_t i = 0; plan.status == 0 && i < plan.candidates.size(); ++i) {
    const inference::Route& route = *plan.candidates[i];
    const bool last = i + 1 == plan.candidates.size();
    Attempt attempt = co_await try_route(s, client, req, target, route, *services, last,
                                         client_keeps, backend, started);
    if (!attempt.answered) {
      info.failed_over.push_back(attempt.failure);
      continue;
    }
    info.route = route.name;
    info.locality = std::string(inference::to_string(route.locality));
    info.sent_model = route.model;
    info.status = attempt.status;
    info.first_byte_ms = attempt.first_byte_ms;
    if (attempt.usage) {
      info.input_tokens = attempt.usage->input;
      info.output_tokens = attempt.usage->output;
    }
    info.latency_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    emit_inference(*s, info);
    co_return attempt.keep;
  }
  if (plan.status == 0) {
    std::string tried;
    for (const auto& f : info.failed_over) tried += (tried.empty() ? "" : "; ") + f;
    plan.status = info.status = 502;
    plan.phrase = "Bad Gateway";
    info.error = "no_backend";
    info.reason = "every eligible route failed: " + tried;
    plan.body = error_body(info.error, info.reason);
  }
  info.latency_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  emit_inference(*s, info);
  const std::string response = http_response(plan.status, plan.phrase, plan.body, "", client_keeps);
  error_code ec;
  co_await asio::async_write(client, asio::buffer(response), asio::redirect_error(use_awaitable, ec));
  co_return client_keeps && !ec && !other_host;
}

template <class Client>
awaitable<SessionRunner::Attempt> SessionRunner::try_route(
    std::shared_ptr<Session> s, Client& client, const http::request<http::string_body>& req,
    const std::string& target, const inference::Route& route, const services::Services& svc,
    bool last, bool client_keeps, Backend& backend, Clock::time_point started) {
  Attempt out;
  const auto fail = [&](std::string why) {
    out.failure = route.name + ": " + why;
    return out;
  };
  const auto url = inference::parse_base_url(route.base_url);
  if (!url) co_return fail(url.error().message());
  const providers::Provider* provider = services::find_provider(svc, route.provider);
  if (provider == nullptr || provider->credentials.empty())
    co_return fail("provider " + route.provider + " is not available");
  const auto& profile = providers::profile(provider->type);
  // The route's provider's key: its first credential, by key name.
  const std::string& secret = provider->credentials.begin()->second;

  http::request<http::string_body> out_req;
  out_req.method_string(req.method_string());
  out_req.target(url->prefix + target);
  out_req.version(11);
  for (const auto& f : req)
    if (!dropped(sv(f.name_string()))) out_req.insert(f.name_string(), f.value());
  const bool default_port = url->port == (url->tls ? 443 : 80);
  out_req.set(http::field::host, (url->host.find(':') != std::string::npos
                                      ? "[" + url->host + "]"
                                      : url->host) +
                                     (default_port ? "" : ":" + std::to_string(url->port)));
  out_req.set(profile.auth_header,
              profile.auth_scheme.empty() ? secret : profile.auth_scheme + " " + secret);
  if (route.api == inference::Api::kAnthropic && out_req.find("anthropic-version") == out_req.end())
    out_req.set("anthropic-version", "2023-06-01");
  if (!req.body().empty()) {
    auto body = inference::with_model(req.body(), route.model);
    if (!body) co_return fail(body.error().message());
    out_req.body() = std::move(*body);
  }
  out_req.keep_alive(true);
  out_req.prepare_payload();

  // Dial (or keep) the backend: a local route directly, a remote one through the operator's
  // proxy when there is one.
  const std::string key = std::string(url->tls ? "https://" : "http://") + url->host + ":" +
                          std::to_string(url->port);
  error_code ec;
  for (int round = 0; round < 2; ++round) {
    const bool reused = backend.key == key && s->upstream.is_open();
    if (!reused) {
      backend.key.clear();
      backend.tls.reset();
      backend.buffer.consume(backend.buffer.size());
      error_code ignored;
      s->upstream.close(ignored);
      if (config_.upstream_proxy && route.locality == inference::Locality::kRemote) {
        const std::string why = co_await dial_through_proxy(*s, url->host, url->port);
        if (!why.empty()) co_return fail(why);
      } else {
        const auto addresses = co_await resolve(url->host);
        ec = co_await connect_any(*s, addresses, url->port, nullptr);
        if (ec) co_return fail("cannot connect to " + url->host + ":" + std::to_string(url->port) +
                               ": " + ec.message());
      }
      if (url->tls) {
        auto context = config_.tls ? config_.tls->upstream()
                                   : Result<ssl::context*>(Error::invalid("no TLS here"));
        if (!context) co_return fail(context.error().message());
        backend.tls = std::make_unique<ssl::stream<tcp::socket&>>(s->upstream, **context);
        if (auto st = expect_host(backend.tls->native_handle(), url->host); !st)
          co_return fail(st.error().message());
        arm_deadline(s, std::chrono::seconds(config_.limits.connect_timeout_s));
        co_await backend.tls->async_handshake(ssl::stream_base::client,
                                              asio::redirect_error(use_awaitable, ec));
        s->timer.cancel();
        if (ec) {
          std::string why = verification_failure(backend.tls->native_handle());
          co_return fail("TLS with " + url->host + " failed: " + (why.empty() ? ec.message() : why));
        }
      }
      backend.key = key;
    }
    // Two statements, not one conditional expression: GCC 12 destroys the result of a co_await
    // in either arm of ?: twice.
    Attempt a;
    if (backend.tls)
      a = co_await call_backend(s, client, *backend.tls, backend, out_req, last, client_keeps,
                                started);
    else
      a = co_await call_backend(s, client, s->upstream, backend, out_req, last, client_keeps,
                                started);
    // A kept connection the backend closed meanwhile: once more on a new one.
    if (!a.answered && reused && a.failure.empty()) continue;
    if (!a.answered && a.failure.empty()) a.failure = "the backend closed the connection";
    if (!a.answered) a.failure = route.name + ": " + a.failure;
    co_return a;
  }
  co_return fail("the backend closed the connection");
}

template <class Client, class Upstream>
awaitable<SessionRunner::Attempt> SessionRunner::call_backend(
    std::shared_ptr<Session> s, Client& client, Upstream& upstream, Backend& backend,
    http::request<http::string_body>& out_req, bool last, bool client_keeps,
    Clock::time_point started) {
  Attempt a;
  error_code ec;
  arm_deadline(s, std::chrono::seconds(config_.limits.idle_timeout_s));
  co_await http::async_write(upstream, out_req, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    backend.key.clear();
    s->timer.cancel();
    co_return a;  // empty failure: a kept connection may just have gone stale
  }
  http::response_parser<http::buffer_body> rp;
  rp.header_limit(static_cast<std::uint32_t>(config_.limits.max_header_bytes));
  rp.body_limit(std::numeric_limits<std::uint64_t>::max());
  co_await http::async_read_header(upstream, backend.buffer, rp,
                                   asio::redirect_error(use_awaitable, ec));
  s->timer.cancel();
  if (ec) {
    backend.key.clear();
    if (ec != http::error::end_of_stream && ec != asio::error::eof)
      a.failure = "no response head: " + ec.message();
    co_return a;
  }
  auto& res = rp.get();
  a.status = res.result_int();
  if (a.status >= 500 && !last) {
    // Nothing went to the agent yet: the next route may answer.
    backend.key.clear();
    a.failure = "answered " + std::to_string(a.status);
    co_return a;
  }
  a.answered = true;
  const bool backend_keeps = res.keep_alive();
  const bool delimited = rp.is_done() || rp.chunked() || rp.content_length().has_value();
  a.keep = client_keeps && delimited;
  res.keep_alive(a.keep);
  for (const auto name : {"keep-alive", "proxy-connection"}) res.erase(name);
  const auto content_type = sv(res[http::field::content_type]);
  UsageTap usage(content_type.find("text/event-stream") != std::string_view::npos);
  const std::function<void(std::string_view)> tap = [&](std::string_view data) {
    if (data.empty()) return;
    if (a.first_byte_ms < 0)
      a.first_byte_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    usage(data);
  };
  const auto body_buffer = std::make_unique_for_overwrite<char[]>(kRelayBuffer);
  http::serializer<false, http::buffer_body> sr{res};
  arm_deadline(s, std::chrono::seconds(config_.limits.idle_timeout_s));
  ec = co_await relay_message(upstream, backend.buffer, rp, client, sr,
                              std::span<char>(body_buffer.get(), kRelayBuffer), &tap);
  s->timer.cancel();
  a.usage = usage.finish();
  if (ec || !backend_keeps || !rp.is_done()) backend.key.clear();
  if (ec) a.keep = false;
  co_return a;
}

void SessionRunner::emit_inference(const Session& s, ocsf::InferenceInfo info) {
  if (config_.events == nullptr) return;
  egress::Decision d;
  d.host = capture::kInferenceHost;
  d.reason_text = info.reason;
  info.connection = connection_info(s, d, "", info.status >= 200 && info.status < 400);
  info.connection.reason = info.error;
  config_.events->emit(ocsf::inference_activity(config_.sandbox, info));
}

}  // namespace openshell::supervisor::proxy
