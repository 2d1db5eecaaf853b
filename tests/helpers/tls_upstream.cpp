// tls_upstream ADDR PORT MODE... SECONDS : the upstream of L7 tests (issue 15), in a network
// namespace the test made (tests/support/upstream.hpp), never on a real network. Unlike the
// probes it runs outside sandboxes, so it may use Boost.Beast and OpenSSL like the product.
//
// MODE is one of
//   http                 HTTP/1.1, request after request on a connection (keep-alive as the
//                        client asks): 200 "upstream ok: METHOD TARGET host=HOST body=N\n"; an
//                        "Expect: 100-continue" gets its 100 first; a WebSocket upgrade is
//                        accepted and every message is echoed
//   https NAME CA_FILE   the same over TLS, presenting a certificate for the name the client
//                        asks for (SNI; NAME when it asks for none) issued by a CA made now,
//                        whose certificate (PEM) is written to CA_FILE
//   connect-proxy NAME=ADDR...  an HTTP CONNECT proxy that opens tunnels to NAME:PORT (the
//                        names given, or numeric addresses) and relays bytes
//   openai NAME GO_FILE  a model backend (issue 16), plain HTTP: POST /v1/chat/completions,
//                        /v1/messages... answer JSON {"backend": NAME, "model": the model asked,
//                        "usage": ...}; with "stream": true, SSE: a first event, then (once
//                        GO_FILE exists, at most 10 s later) the last ones, and
//                        "sse last after go" or "sse last without go"
//   fail                 every request: 503
//
// Prints "listening ADDR:PORT" once it accepts, then one line per event: "request METHOD
// TARGET host=HOST conn=N body=LEN[ auth=VALUE][ model=MODEL]" (auth: Authorization or
// x-api-key as received), "websocket TARGET conn=N", "message TEXT", "connect TARGET"; every
// line flushed. Exits 0 after SECONDS, 1 when it cannot listen or set up TLS,
// 2 on bad arguments.
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without including it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "supervisor/proxy/sandbox_ca.hpp"
#include "supervisor/proxy/tls_contexts.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

constexpr size_t kMaxBody = 8UL << 20;

// What the model backend modes answer with (openai, fail).
struct Backend {
  std::string mode;  // "" (http/https: echo), "openai", "fail"
  std::string name;
  std::string go_file;
};
Backend g_backend;

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

template <class Stream>
awaitable<void> echo_websocket(Stream& stream, http::request<http::empty_body> req) {
  websocket::stream<Stream&> ws(stream);
  error_code ec;
  co_await ws.async_accept(req, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  for (;;) {
    beast::flat_buffer message;
    co_await ws.async_read(message, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    say("message " + beast::buffers_to_string(message.data()));
    ws.text(ws.got_text());
    co_await ws.async_write(message.data(), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
  }
}

template <class Stream>
awaitable<void> send_chunk(Stream& stream, std::string data) {
  error_code ec;
  co_await asio::async_write(stream, http::make_chunk(asio::buffer(data)),
                             asio::redirect_error(use_awaitable, ec));
}

// A model backend's answer; false when the connection is done.
template <class Stream>
awaitable<bool> answer_model_call(Stream& stream, const http::request<http::string_body>& req,
                                  const std::string& model, bool sse) {
  error_code ec;
  if (g_backend.mode == "fail") {
    http::response<http::string_body> res{http::status::service_unavailable, 11};
    res.body() = "{\"error\":\"down\"}";
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    co_return !ec && req.keep_alive();
  }
  if (!sse) {
    http::response<http::string_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = nlohmann::json{{"backend", g_backend.name},
                                {"model", model},
                                {"choices", {{{"message", {{"content", "hello"}}}}}},
                                {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 7}}}}
                     .dump();
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    co_return !ec && req.keep_alive();
  }
  // Server-sent events, chunk by chunk: the last ones only once the client saw the first.
  http::response<http::empty_body> head{http::status::ok, 11};
  head.set(http::field::content_type, "text/event-stream");
  head.chunked(true);
  head.keep_alive(false);
  http::response_serializer<http::empty_body> sr{head};
  co_await http::async_write_header(stream, sr, asio::redirect_error(use_awaitable, ec));
  co_await send_chunk(stream, "data: {\"backend\":\"" + g_backend.name + "\",\"delta\":\"first\"}\n\n");
  bool went = false;
  asio::steady_timer wait(stream.get_executor());
  for (int i = 0; i < 1000 && !went; ++i) {  // at most 10 s
    went = std::ifstream(g_backend.go_file).good();
    if (went) break;
    wait.expires_after(std::chrono::milliseconds(10));
    co_await wait.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  say(went ? "sse last after go" : "sse last without go");
  co_await send_chunk(stream, "data: {\"delta\":\"last\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n");
  co_await send_chunk(stream, "data: [DONE]\n\n");
  co_await asio::async_write(stream, http::make_chunk_last(), asio::redirect_error(use_awaitable, ec));
  co_return false;
}

template <class Stream>
awaitable<void> serve_http(Stream& stream, long conn) {
  beast::flat_buffer buffer;
  for (;;) {
    error_code ec;
    http::request_parser<http::empty_body> head;
    head.body_limit(kMaxBody);  // checked against Content-Length with the head
    co_await http::async_read_header(stream, buffer, head, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    const std::string target(head.get().target());
    const std::string host(head.get()[http::field::host]);
    if (websocket::is_upgrade(head.get())) {
      say("websocket " + target + " conn=" + std::to_string(conn));
      co_await echo_websocket(stream, head.release());
      co_return;
    }
    if (beast::iequals(head.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> go{http::status::continue_, 11};
      co_await http::async_write(stream, go, asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
    }
    http::request_parser<http::string_body> full(std::move(head));
    full.body_limit(kMaxBody);
    co_await http::async_read(stream, buffer, full, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    const auto& req = full.get();
    std::string auth(req[http::field::authorization]);
    if (auth.empty()) auth = std::string(req["x-api-key"]);
    const auto json = nlohmann::json::parse(req.body(), nullptr, false);
    const std::string model =
        json.is_object() && json.contains("model") && json["model"].is_string()
            ? json["model"].get<std::string>()
            : "";
    say("request " + std::string(req.method_string()) + " " + target + " host=" + host +
        " conn=" + std::to_string(conn) + " body=" + std::to_string(req.body().size()) +
        (auth.empty() ? "" : " auth=" + auth) + (model.empty() ? "" : " model=" + model));
    if (!g_backend.mode.empty()) {
      const bool stream_asked = json.is_object() && json.value("stream", false);
      if (!co_await answer_model_call(stream, req, model, stream_asked)) co_return;
      continue;
    }
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain");
    res.body() = "upstream ok: " + std::string(req.method_string()) + " " + target +
                 " host=" + host + " body=" + std::to_string(req.body().size()) + "\n";
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    if (ec || !req.keep_alive()) co_return;
  }
}

awaitable<void> pipe(tcp::socket& from, tcp::socket& to) {
  char buf[16384];
  for (;;) {
    error_code ec;
    const size_t n =
        co_await from.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    co_await asio::async_write(to, asio::buffer(buf, n), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
  }
  error_code ignored;
  to.shutdown(tcp::socket::shutdown_send, ignored);
}

awaitable<void> serve_connect(tcp::socket client, std::map<std::string, std::string> names) {
  beast::flat_buffer buffer;
  http::request_parser<http::empty_body> head;
  error_code ec;
  co_await http::async_read_header(client, buffer, head, asio::redirect_error(use_awaitable, ec));
  if (ec || head.get().method() != http::verb::connect) co_return;
  const std::string target(head.get().target());
  say("connect " + target);
  const auto colon = target.rfind(':');
  std::string host = target.substr(0, colon);
  if (auto it = names.find(host); it != names.end()) host = it->second;
  tcp::socket upstream(client.get_executor());
  const auto address = asio::ip::make_address(host, ec);
  if (!ec)
    co_await upstream.async_connect(
        tcp::endpoint(address, static_cast<uint16_t>(std::stoi(target.substr(colon + 1)))),
        asio::redirect_error(use_awaitable, ec));
  const std::string answer = ec ? "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
                                : "HTTP/1.1 200 Connection Established\r\n\r\n";
  co_await asio::async_write(client, asio::buffer(answer), asio::redirect_error(use_awaitable, ec));
  if (ec || !upstream.is_open()) co_return;
  if (buffer.size() > 0)
    co_await asio::async_write(upstream, buffer.data(), asio::redirect_error(use_awaitable, ec));
  asio::co_spawn(client.get_executor(), pipe(upstream, client), asio::detached);
  co_await pipe(client, upstream);
  // Both directions share these sockets: wait for the other one before they go.
  asio::steady_timer linger(client.get_executor(), std::chrono::seconds(5));
  co_await linger.async_wait(asio::redirect_error(use_awaitable, ec));
}

awaitable<void> serve(tcp::socket socket, long conn, asio::ssl::context* tls,
                      std::map<std::string, std::string> names, bool proxy) {
  if (proxy) {
    co_await serve_connect(std::move(socket), std::move(names));
    co_return;
  }
  if (tls == nullptr) {
    co_await serve_http(socket, conn);
    co_return;
  }
  asio::ssl::stream<tcp::socket&> stream(socket, *tls);
  error_code ec;
  co_await stream.async_handshake(asio::ssl::stream_base::server,
                                  asio::redirect_error(use_awaitable, ec));
  if (ec) {
    say("handshake failed " + ec.message());
    co_return;
  }
  co_await serve_http(stream, conn);
}

awaitable<void> accept_all(tcp::acceptor& acceptor, asio::ssl::context* tls,
                           std::map<std::string, std::string> names, bool proxy) {
  for (long conn = 1;; ++conn) {
    error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), conn, tls, names, proxy),
                   asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace openshell::supervisor::proxy;
  constexpr const char* kUsage =
      "usage: tls_upstream ADDR PORT http|https NAME CA_FILE|connect-proxy NAME=ADDR...|"
      "openai NAME GO_FILE|fail SECONDS\n";
  if (argc < 5) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string address = argv[1];
  const int port = std::atoi(argv[2]);
  const std::string mode = argv[3];
  const int seconds = std::atoi(argv[argc - 1]);
  asio::io_context io;
  std::unique_ptr<asio::ssl::context> tls;
  std::unique_ptr<SandboxCa> ca;
  std::map<std::string, std::string> names;
  if (mode == "https") {
    if (argc != 7) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    auto made = SandboxCa::create("test-upstream");
    auto context = make_agent_context();
    if (!made || !context) {
      std::fprintf(stderr, "cannot make the test CA\n");
      return 1;
    }
    ca = std::move(*made);
    std::ofstream(argv[5]) << ca->certificate_pem();
    tls = std::make_unique<asio::ssl::context>(context->release());
    // Each connection gets a certificate for the name it asks for (SNI); none: NAME.
    static SandboxCa* issuer = ca.get();
    static std::string fallback = argv[4];
    using ServerName = int (*)(SSL*, int*, void*);
    const ServerName pick = [](SSL* ssl, int*, void*) -> int {
      const char* asked = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
      auto leaf = issuer->leaf_for(asked != nullptr ? asked : fallback);
      if (!leaf || SSL_use_certificate(ssl, (*leaf)->certificate.get()) != 1 ||
          SSL_use_PrivateKey(ssl, (*leaf)->key) != 1)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
      return SSL_TLSEXT_ERR_OK;
    };
    // SSL_CTX_set_tlsext_servername_callback, without the macro's C cast.
    SSL_CTX_callback_ctrl(tls->native_handle(), SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
                          reinterpret_cast<void (*)()>(pick));
  } else if (mode == "openai" || mode == "fail") {
    if ((mode == "openai" && argc != 7) || (mode == "fail" && argc != 5)) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    g_backend.mode = mode;
    if (mode == "openai") {
      g_backend.name = argv[4];
      g_backend.go_file = argv[5];
    }
  } else if (mode == "connect-proxy") {
    for (int i = 4; i < argc - 1; ++i) {
      const std::string entry = argv[i];
      const auto eq = entry.find('=');
      if (eq == std::string::npos) {
        std::fputs(kUsage, stderr);
        return 2;
      }
      names[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
  } else if (mode != "http" || argc != 5) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  error_code ec;
  tcp::acceptor acceptor(io);
  const tcp::endpoint endpoint(asio::ip::make_address(address, ec), static_cast<uint16_t>(port));
  if (!ec) acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(64, ec);
  if (ec) {
    std::fprintf(stderr, "cannot listen on %s:%d: %s\n", address.c_str(), port,
                 ec.message().c_str());
    return 1;
  }
  say("listening " + address + ":" + std::to_string(port));
  asio::co_spawn(io, accept_all(acceptor, tls.get(), names, mode == "connect-proxy"),
                 asio::detached);
  asio::steady_timer stop(io, std::chrono::seconds(seconds));
  stop.async_wait([&io](const error_code&) { io.stop(); });
  io.run();
  return 0;
}
