#include "core/hosts_file.hpp"

#include <algorithm>

namespace openshell {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

}  // namespace

std::vector<IpAddress> hosts_file_lookup(std::string_view text, std::string_view name) {
  std::vector<IpAddress> out;
  if (name.empty()) return out;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    line = line.substr(0, line.find('#'));
    // Fields: the address, then the canonical name and its aliases.
    std::vector<std::string_view> fields;
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() && is_blank(line[i])) ++i;
      const size_t start = i;
      while (i < line.size() && !is_blank(line[i])) ++i;
      if (i > start) fields.push_back(line.substr(start, i - start));
    }
    if (fields.size() < 2) continue;
    if (std::none_of(fields.begin() + 1, fields.end(),
                     [&](std::string_view f) { return same_name(f, name); }))
      continue;
    auto address = parse_ip(fields[0]);
    if (!address) continue;
    if (std::find(out.begin(), out.end(), *address) == out.end()) out.push_back(*address);
  }
  return out;
}

}  // namespace openshell
