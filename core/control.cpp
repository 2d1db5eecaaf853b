#include "core/control.hpp"

#include <algorithm>

namespace openshell::control {
namespace {

using nlohmann::json;

// Nesting depth of a JSON text, strings skipped; stops counting past `limit`. Checked before
// parsing so that no parser or destructor recurses on attacker-chosen depth.
size_t nesting_depth(std::string_view text, size_t limit) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

Result<json> parse_object(std::string_view frame) {
  if (frame.empty()) return Error::invalid("empty frame");
  if (frame.size() > kMaxFrame)
    return Error::invalid("frame of " + std::to_string(frame.size()) + " bytes (at most " +
                          std::to_string(kMaxFrame) + ")");
  if (nesting_depth(frame, kMaxDepth) > kMaxDepth) return Error::invalid("frame nested too deep");
  json j = json::parse(frame, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error::invalid("frame is not valid JSON");
  if (!j.is_object()) return Error::invalid("frame is not a JSON object");
  return j;
}

Status only_keys(const json& j, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : j.items()) {
    (void)value;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return Error::invalid("unknown field '" + key.substr(0, 64) + "'");
  }
  return {};
}

Result<std::string> text_field(const json& j, const char* key, size_t max_bytes, bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return Error::invalid(std::string("missing field '") + key + "'");
    return std::string();
  }
  if (!it->is_string()) return Error::invalid(std::string("'") + key + "' must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max_bytes)
    return Error::invalid(std::string("'") + key + "' longer than " + std::to_string(max_bytes) +
                          " bytes");
  if (s.find('\0') != std::string::npos)
    return Error::invalid(std::string("'") + key + "' contains a NUL byte");
  return s;
}

Result<std::vector<std::string>> list_field(const json& j, const char* key, bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return Error::invalid(std::string("missing field '") + key + "'");
    return std::vector<std::string>{};
  }
  if (!it->is_array()) return Error::invalid(std::string("'") + key + "' must be an array");
  if (it->size() > kMaxArgs)
    return Error::invalid(std::string("'") + key + "' has more than " + std::to_string(kMaxArgs) +
                          " entries");
  std::vector<std::string> out;
  out.reserve(it->size());
  for (const auto& v : *it) {
    if (!v.is_string()) return Error::invalid(std::string("'") + key + "' entries must be strings");
    const auto& s = v.get_ref<const std::string&>();
    if (s.size() > kMaxArgBytes || s.find('\0') != std::string::npos)
      return Error::invalid(std::string("an entry of '") + key + "' is too long or holds a NUL");
    out.push_back(s);
  }
  return out;
}

Status check_exec(const ExecRequest& e) {
  if (e.argv.empty() || e.argv.front().empty()) return Error::invalid("exec needs a command");
  for (const auto& kv : e.env) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return Error::invalid("env entries are KEY=VALUE, got '" + kv.substr(0, 64) + "'");
  }
  if (!e.cwd.empty() && e.cwd.front() != '/') return Error::invalid("cwd must be absolute");
  return {};
}

Result<Op> op_of(std::string_view name) {
  for (Op op : {Op::kStatus, Op::kPolicyUpdate, Op::kShutdown, Op::kExec, Op::kOpenPty,
                Op::kSignal, Op::kServicesUpdate})
    if (to_string(op) == name) return op;
  return Error::invalid("unknown op '" + std::string(name.substr(0, 64)) + "'");
}

}  // namespace

Status check_env(const std::vector<std::string>& env) {
  constexpr size_t kMaxEntries = 256;
  constexpr size_t kMaxBytes = size_t{128} * 1024;
  if (env.size() > kMaxEntries)
    return Error::invalid("at most " + std::to_string(kMaxEntries) + " --env entries");
  size_t bytes = 0;
  for (const auto& kv : env) {
    bytes += kv.size();
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0 || kv.find('\0') != std::string::npos)
      return Error::invalid("--env takes KEY=VALUE, got '" + kv.substr(0, 64) + "'");
  }
  if (bytes > kMaxBytes) return Error::invalid("--env values exceed 128 KiB");
  return {};
}

std::string_view to_string(Op op) {
  switch (op) {
    case Op::kStatus:
      return "status";
    case Op::kPolicyUpdate:
      return "policy_update";
    case Op::kShutdown:
      return "shutdown";
    case Op::kExec:
      return "exec";
    case Op::kOpenPty:
      return "open_pty";
    case Op::kSignal:
      return "signal";
    case Op::kServicesUpdate:
      return "services_update";
  }
  return "unknown";
}

Result<std::string> encode_request(const Request& request) {
  json j = {{"op", to_string(request.op)}};
  if (request.op == Op::kPolicyUpdate) j["policy_toml"] = request.policy_toml;
  if (request.op == Op::kServicesUpdate) j["services"] = request.services;
  if (request.op == Op::kSignal) {
    j["signal"] = request.signal;
    j["main"] = request.main;
  }
  if (request.op == Op::kExec) {
    if (auto st = check_exec(request.exec); !st) return st.error();
    j["argv"] = request.exec.argv;
    j["env"] = request.exec.env;
    if (!request.exec.cwd.empty()) j["cwd"] = request.exec.cwd;
    j["tty"] = request.exec.tty;
  }
  std::string frame = j.dump(-1, ' ', false, json::error_handler_t::replace);
  // What we send must be what the other side accepts.
  if (auto back = parse_request(frame); !back) return back.error();
  return frame;
}

std::string encode_reply(const Reply& reply) {
  json j = {{"ok", reply.ok}};
  if (reply.ok) {
    j["data"] = reply.data.is_object() ? reply.data : json::object();
  } else {
    j["error"] = reply.error;
    if (!reply.details.empty()) j["details"] = reply.details;
    // A failure may say more, for a program (an exec's exit code: 126, 127).
    if (reply.data.is_object() && !reply.data.empty()) j["data"] = reply.data;
  }
  std::string frame = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (frame.size() > kMaxFrame) {
    // Never more than a frame: keep the error, drop what made it too long.
    json small = {{"ok", false}, {"error", "reply too large to send"}};
    if (!reply.ok) small["error"] = reply.error.substr(0, 1024);
    frame = small.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return frame;
}

Result<Request> parse_request(std::string_view frame) {
  auto j = parse_object(frame);
  if (!j) return j.error();
  auto name = text_field(*j, "op", 32, true);
  if (!name) return name.error();
  auto op = op_of(*name);
  if (!op) return op.error();
  Request r;
  r.op = *op;
  switch (r.op) {
    case Op::kStatus:
    case Op::kShutdown:
    case Op::kOpenPty:
      if (auto st = only_keys(*j, {"op"}); !st) return st.error();
      break;
    case Op::kSignal: {
      if (auto st = only_keys(*j, {"op", "signal", "main"}); !st) return st.error();
      const auto sig = j->find("signal");
      if (sig == j->end() || !sig->is_number_integer() || sig->get<int64_t>() < 1 ||
          sig->get<int64_t>() > 64)
        return Error::invalid("signal must be a number in 1..64");
      r.signal = sig->get<int>();
      if (const auto main = j->find("main"); main != j->end()) {
        if (!main->is_boolean()) return Error::invalid("'main' must be a boolean");
        r.main = main->get<bool>();
      }
      break;
    }
    case Op::kPolicyUpdate: {
      if (auto st = only_keys(*j, {"op", "policy_toml"}); !st) return st.error();
      auto toml = text_field(*j, "policy_toml", kMaxFrame, true);
      if (!toml) return toml.error();
      r.policy_toml = std::move(*toml);
      break;
    }
    case Op::kServicesUpdate: {
      if (auto st = only_keys(*j, {"op", "services"}); !st) return st.error();
      const auto it = j->find("services");
      if (it == j->end() || !it->is_object())
        return Error::invalid("'services' must be an object");
      r.services = *it;
      break;
    }
    case Op::kExec: {
      if (auto st = only_keys(*j, {"op", "argv", "env", "cwd", "tty"}); !st) return st.error();
      auto argv = list_field(*j, "argv", true);
      if (!argv) return argv.error();
      auto env = list_field(*j, "env", false);
      if (!env) return env.error();
      auto cwd = text_field(*j, "cwd", kMaxArgBytes, false);
      if (!cwd) return cwd.error();
      r.exec.argv = std::move(*argv);
      r.exec.env = std::move(*env);
      r.exec.cwd = std::move(*cwd);
      if (auto it = j->find("tty"); it != j->end()) {
        if (!it->is_boolean()) return Error::invalid("'tty' must be true or false");
        r.exec.tty = it->get<bool>();
      }
      if (auto st = check_exec(r.exec); !st) return st.error();
      break;
    }
  }
  return r;
}

Result<Reply> parse_reply(std::string_view frame) {
  auto j = parse_object(frame);
  if (!j) return j.error();
  if (auto st = only_keys(*j, {"ok", "error", "details", "data"}); !st) return st.error();
  auto ok = j->find("ok");
  if (ok == j->end() || !ok->is_boolean()) return Error::invalid("reply without a boolean 'ok'");
  Reply r;
  r.ok = ok->get<bool>();
  if (auto data = j->find("data"); data != j->end()) {
    if (!data->is_object()) return Error::invalid("'data' must be an object");
    r.data = *data;
  }
  if (r.ok) return r;
  auto error = text_field(*j, "error", kMaxFrame, true);
  if (!error) return error.error();
  r.error = std::move(*error);
  auto details = list_field(*j, "details", false);
  if (!details) return details.error();
  r.details = std::move(*details);
  return r;
}

}  // namespace openshell::control
