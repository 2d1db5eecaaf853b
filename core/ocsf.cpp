#include "core/ocsf.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <tuple>

namespace openshell::ocsf {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view class_name(ClassUid uid) {
  switch (uid) {
    case ClassUid::kProcessActivity:
      return "Process Activity";
    case ClassUid::kDetectionFinding:
      return "Detection Finding";
    case ClassUid::kNetworkActivity:
      return "Network Activity";
    case ClassUid::kHttpActivity:
      return "HTTP Activity";
    case ClassUid::kDnsActivity:
      return "DNS Activity";
    case ClassUid::kDeviceConfigStateChange:
      return "Device Config State Change";
    case ClassUid::kApiActivity:
      return "API Activity";
  }
  return "Unknown";
}

int category_uid(ClassUid uid) { return static_cast<int>(uid) / 1000; }

namespace {

std::string_view category_name(int category) {
  switch (category) {
    case 1:
      return "System Activity";
    case 2:
      return "Findings";
    case 4:
      return "Network Activity";
    case 5:
      return "Discovery";
    case 6:
      return "Application Activity";
    default:
      return "Unknown";
  }
}

std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::kUnknown:
      return "Unknown";
    case Severity::kInformational:
      return "Informational";
    case Severity::kLow:
      return "Low";
    case Severity::kMedium:
      return "Medium";
    case Severity::kHigh:
      return "High";
    case Severity::kCritical:
      return "Critical";
    case Severity::kFatal:
      return "Fatal";
  }
  return "Unknown";
}

std::string_view status_name(StatusId s) {
  switch (s) {
    case StatusId::kUnknown:
      return "Unknown";
    case StatusId::kSuccess:
      return "Success";
    case StatusId::kFailure:
      return "Failure";
  }
  return "Unknown";
}

nlohmann::json process_json(const ProcessInfo& p) {
  nlohmann::json proc = {{"pid", p.pid}};
  if (!p.exe.empty()) {
    auto slash = p.exe.rfind('/');
    proc["name"] = slash == std::string::npos ? p.exe : p.exe.substr(slash + 1);
    proc["file"] = {{"path", p.exe}};
  }
  if (p.uid >= 0) proc["user"] = {{"uid", std::to_string(p.uid)}};
  if (p.sandbox_pid > 0) proc["xattributes"]["sandbox_pid"] = p.sandbox_pid;
  if (!p.session.empty()) proc["xattributes"]["session"] = p.session;
  return proc;
}

Event base(ClassUid uid, std::string_view sandbox, int activity_id, std::string_view activity) {
  Event e;
  e.class_uid = uid;
  e.activity_id = activity_id;
  e.activity_name = activity;
  e.sandbox = sandbox;
  e.time_ms = now_ms();
  return e;
}

}  // namespace

nlohmann::json Event::to_json() const {
  const int cls = static_cast<int>(class_uid);
  const int cat = category_uid(class_uid);
  nlohmann::json j = {
      {"class_uid", cls},
      {"class_name", class_name(class_uid)},
      {"category_uid", cat},
      {"category_name", category_name(cat)},
      {"activity_id", activity_id},
      {"activity_name", activity_name},
      {"type_uid", cls * 100 + activity_id},
      {"type_name", std::string(class_name(class_uid)) + ": " + activity_name},
      {"severity_id", static_cast<int>(severity)},
      {"severity", severity_name(severity)},
      {"status_id", static_cast<int>(status)},
      {"status", status_name(status)},
      {"time", time_ms != 0 ? time_ms : now_ms()},
      {"message", message},
      {"metadata",
       {{"version", kSchemaVersion},
        {"product",
         {{"name", kProductName}, {"vendor_name", kProductName}, {"version", OPENSHELL_VERSION}}}}},
  };
  if (!status_detail.empty()) j["status_detail"] = status_detail;
  for (const auto& [key, value] : fields.items()) j[key] = value;
  if (!sandbox.empty()) j["unmapped"]["sandbox"] = sandbox;
  return j;
}

std::string Event::to_json_line() const {
  // Replace invalid UTF-8 rather than throw: a hostile path must not kill the event stream.
  return to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Event process_launch(std::string_view sandbox, const ProcessInfo& process) {
  Event e = base(ClassUid::kProcessActivity, sandbox, kActivityLaunch, "Launch");
  e.message = (process.session.empty() ? "agent launched: " : process.session + " session launched: ") +
              process.exe;
  e.fields["process"] = process_json(process);
  return e;
}

Event process_exit(std::string_view sandbox, const ProcessInfo& process, int exit_code, int signal,
                   std::string_view detail) {
  Event e = base(ClassUid::kProcessActivity, sandbox, kActivityTerminate, "Terminate");
  e.fields["process"] = process_json(process);
  e.fields["exit_code"] = exit_code;
  if (signal != 0) e.fields["process"]["xattributes"]["signal"] = signal;
  e.status = exit_code == 0 ? StatusId::kSuccess : StatusId::kFailure;
  e.status_detail = detail;
  e.message = (process.session.empty() ? std::string("agent") : process.session + " session") +
              " exited with status " + std::to_string(exit_code);
  if (!detail.empty()) e.message += " (" + std::string(detail) + ")";
  return e;
}

Event config_change(std::string_view sandbox, std::string_view activity, Severity severity,
                    StatusId status, std::string_view message, nlohmann::json fields) {
  Event e = base(ClassUid::kDeviceConfigStateChange, sandbox, kActivityOther, activity);
  e.severity = severity;
  e.status = status;
  e.message = message;
  if (fields.is_object()) e.fields = std::move(fields);
  return e;
}

namespace {

nlohmann::json connection_fields(const ConnectionInfo& c) {
  nlohmann::json j;
  j["dst_endpoint"] = {{"hostname", c.host}, {"port", c.port}};
  if (!c.address.empty()) j["dst_endpoint"]["ip"] = c.address;
  if (!c.src_address.empty()) j["src_endpoint"] = {{"ip", c.src_address}, {"port", c.src_port}};
  if (c.pid > 0 || !c.binary.empty()) {
    j["actor"]["process"] = {{"pid", c.pid}};
    if (!c.binary.empty()) j["actor"]["process"]["file"] = {{"path", c.binary}};
  }
  if (c.uid >= 0) j["actor"]["user"] = {{"uid", std::to_string(c.uid)}};
  j["disposition"] = c.allowed ? "Allowed" : "Blocked";
  j["disposition_id"] = c.allowed ? 1 : 2;
  if (!c.rule.empty()) j["firewall_rule"] = {{"name", c.rule}, {"type", "network_policies"}};
  if (!c.protocol.empty()) j["connection_info"] = {{"protocol_name", c.protocol}};
  j["unmapped"]["mode"] = c.mode;
  if (c.audit) j["unmapped"]["audit"] = true;
  if (!c.reason.empty()) j["unmapped"]["reason"] = c.reason;
  return j;
}

}  // namespace

Event network_activity(std::string_view sandbox, const ConnectionInfo& c) {
  Event e = base(ClassUid::kNetworkActivity, sandbox, 1, "Open");
  e.fields = connection_fields(c);
  e.status = c.allowed ? StatusId::kSuccess : StatusId::kFailure;
  e.severity =
      c.allowed ? (c.audit ? Severity::kLow : Severity::kInformational) : Severity::kMedium;
  e.status_detail = c.detail;
  e.message = std::string(c.allowed ? "allowed " : "denied ") + c.host + ":" +
              std::to_string(c.port) + (c.binary.empty() ? "" : " for " + c.binary);
  return e;
}

Event dns_denied(std::string_view sandbox, std::string_view name, uint16_t qtype) {
  Event e = base(ClassUid::kDnsActivity, sandbox, 1, "Query");
  e.fields["query"] = {{"hostname", name}, {"type_id", qtype}};
  e.fields["rcode"] = "NXDomain";
  e.fields["rcode_id"] = 3;
  e.fields["disposition"] = "Blocked";
  e.fields["disposition_id"] = 2;
  e.status = StatusId::kFailure;
  e.severity = Severity::kLow;
  e.status_detail = "name not allowed by any endpoint";
  e.message = "DNS query for " + std::string(name) + " refused";
  return e;
}

Event bypass_finding(std::string_view sandbox, const ConnectionInfo& c) {
  Event e = base(ClassUid::kDetectionFinding, sandbox, 1, "Create");
  e.fields = connection_fields(c);
  e.fields["finding_info"] = {{"title", "connection bypassing the proxy was refused"},
                              {"uid", "openshell.bypass"}};
  e.severity = Severity::kHigh;
  e.status = StatusId::kFailure;
  e.status_detail = c.detail;
  e.message = "bypass attempt to " + c.host + ":" + std::to_string(c.port) + " refused";
  return e;
}

Event credential_finding(std::string_view sandbox, const ConnectionInfo& c,
                         const std::vector<std::string>& keys, std::string_view method,
                         std::string_view path) {
  Event e = base(ClassUid::kDetectionFinding, sandbox, 1, "Create");
  e.fields = connection_fields(c);
  e.fields["finding_info"] = {{"title", "credential placeholder outside its endpoint"},
                              {"uid", "openshell.credential_endpoint_mismatch"}};
  const std::string shown(path.substr(0, std::min(path.find('?'), size_t{4096})));
  e.fields["http_request"] = {{"http_method", std::string(method.substr(0, 32))},
                              {"url", {{"hostname", c.host}, {"port", c.port}, {"path", shown}}}};
  e.fields["unmapped"]["credential_keys"] = keys;
  e.severity = Severity::kHigh;
  e.status = StatusId::kFailure;
  e.status_detail = "credential_endpoint_mismatch";
  e.message = "credential placeholder for " + c.host + ":" + std::to_string(c.port) +
              " refused (not bound there)";
  return e;
}

Event inference_activity(std::string_view sandbox, const InferenceInfo& i) {
  Event e = base(ClassUid::kApiActivity, sandbox, i.call == "models" ? 2 : 1,
                 i.call == "models" ? "Read" : "Create");
  e.fields = connection_fields(i.connection);
  e.fields["api"] = {{"operation", i.call}, {"service", {{"name", "inference.local"}}}};
  nlohmann::json u = {{"route", i.route},
                      {"locality", i.locality},
                      {"requested_model", i.requested_model},
                      {"sent_model", i.sent_model},
                      {"status", i.status},
                      {"latency_ms", i.latency_ms}};
  if (i.first_byte_ms >= 0) u["time_to_first_byte_ms"] = i.first_byte_ms;
  if (i.input_tokens) u["input_tokens"] = *i.input_tokens;
  if (i.output_tokens) u["output_tokens"] = *i.output_tokens;
  if (!i.failed_over.empty()) u["failed_over"] = i.failed_over;
  if (!i.error.empty()) u["error"] = i.error;
  e.fields["unmapped"]["inference"] = std::move(u);
  e.fields["http_response"] = {{"code", i.status}};
  const bool ok = i.status >= 200 && i.status < 400;
  e.status = ok ? StatusId::kSuccess : StatusId::kFailure;
  e.severity = ok ? Severity::kInformational : Severity::kLow;
  e.status_detail = i.reason;
  e.message = "inference " + i.call + " -> " + (i.route.empty() ? "no route" : i.route) + " " +
              std::to_string(i.status) + (i.failed_over.empty() ? "" : " (after failover)");
  return e;
}

Event http_activity(std::string_view sandbox, const HttpInfo& h) {
  // OCSF 1.7's HTTP Activity ids and captions, by method; anything else is Other, named by the
  // method itself.
  static constexpr std::tuple<std::string_view, int, std::string_view> kMethods[] = {
      {"CONNECT", 1, "Connect"}, {"DELETE", 2, "Delete"}, {"GET", 3, "Get"},
      {"HEAD", 4, "Head"},       {"OPTIONS", 5, "Options"}, {"POST", 6, "Post"},
      {"PUT", 7, "Put"},         {"TRACE", 8, "Trace"},   {"PATCH", 9, "Patch"}};
  std::string method = h.method.substr(0, 32);
  for (auto& ch : method) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  int id = kActivityOther;
  std::string caption = method;
  for (const auto& [name, value, shown] : kMethods)
    if (name == method) {
      id = value;
      caption = shown;
    }
  Event e = base(ClassUid::kHttpActivity, sandbox, id, caption);
  const ConnectionInfo& c = h.connection;
  e.fields = connection_fields(c);
  const std::string path = h.path.substr(0, std::min(h.path.find('?'), size_t{4096}));
  e.fields["http_request"] = {{"http_method", method},
                              {"url", {{"hostname", c.host}, {"port", c.port}, {"path", path}}}};
  if (h.status != 0) e.fields["http_response"] = {{"code", h.status}};
  if (!h.l7_rule.empty()) e.fields["unmapped"]["l7_rule"] = h.l7_rule;
  e.fields["unmapped"]["enforcement"] = h.enforced ? "enforce" : "audit";
  e.status = c.allowed ? StatusId::kSuccess : StatusId::kFailure;
  e.severity =
      c.allowed ? (c.audit ? Severity::kLow : Severity::kInformational) : Severity::kMedium;
  e.status_detail = c.detail;
  e.message = std::string(c.allowed ? "allowed " : "denied ") + method + " " + c.host + path;
  return e;
}

}  // namespace openshell::ocsf
