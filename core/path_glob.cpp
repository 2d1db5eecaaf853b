#include "core/path_glob.hpp"

#include <algorithm>

namespace openshell::policy {

Result<PathGlob> PathGlob::compile(std::string_view pattern, GlobSyntax syntax) {
  PathGlob glob;
  glob.pattern_ = std::string(pattern);
  glob.syntax_ = syntax;

  size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    Token tok;
    if (c == '\0') {
      return Error::invalid("glob contains a NUL byte");
    } else if (c == '*') {
      size_t run = 0;
      while (i < pattern.size() && pattern[i] == '*') {
        ++run;
        ++i;
      }
      tok.kind =
          (syntax == GlobSyntax::kFlat || run > 1) ? TokenKind::kDoubleStar : TokenKind::kStar;
      // Adjacent stars ("*/**" is not adjacent, "***" is) add nothing but NFA states.
      if (!glob.tokens_.empty() && (glob.tokens_.back().kind == TokenKind::kStar ||
                                    glob.tokens_.back().kind == TokenKind::kDoubleStar)) {
        if (tok.kind == TokenKind::kDoubleStar) glob.tokens_.back().kind = TokenKind::kDoubleStar;
        glob.literal_ = false;
        continue;
      }
      glob.literal_ = false;
      glob.tokens_.push_back(tok);
      continue;
    } else if (c == '?') {
      tok.kind = TokenKind::kAnyChar;
      glob.literal_ = false;
    } else if (c == '[') {
      const size_t open = i;
      size_t j = i + 1;
      const bool negate = j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^');
      if (negate) ++j;
      bool first = true;
      bool closed = false;
      while (j < pattern.size()) {
        const char lo = pattern[j];
        if (lo == '\0') return Error::invalid("glob contains a NUL byte");
        if (lo == ']' && !first) {
          closed = true;
          break;
        }
        first = false;
        if (j + 2 < pattern.size() && pattern[j + 1] == '-' && pattern[j + 2] != ']') {
          const char hi = pattern[j + 2];
          if (hi == '\0') return Error::invalid("glob contains a NUL byte");
          const auto ulo = static_cast<unsigned char>(lo);
          const auto uhi = static_cast<unsigned char>(hi);
          if (ulo > uhi) {
            return Error::invalid("descending range '" + std::string(pattern.substr(j, 3)) +
                                  "' in a glob class");
          }
          for (unsigned b = ulo; b <= uhi; ++b) tok.set.set(b);
          j += 3;
        } else {
          tok.set.set(static_cast<unsigned char>(lo));
          ++j;
        }
      }
      if (!closed) {
        return Error::invalid("unclosed '[' at offset " + std::to_string(open) + " in glob");
      }
      if (negate) tok.set.flip();
      if (syntax == GlobSyntax::kSegments) tok.set.reset(static_cast<unsigned char>('/'));
      tok.kind = TokenKind::kClass;
      glob.literal_ = false;
      i = j;  // at the closing ']'
    } else {
      tok.kind = TokenKind::kChar;
      tok.ch = c;
    }
    glob.tokens_.push_back(tok);
    ++i;
  }
  return glob;
}

bool PathGlob::matches(std::string_view text) const {
  if (literal_) return text == pattern_;

  const size_t n = tokens_.size();
  std::vector<uint8_t> cur(n + 1, 0);
  std::vector<uint8_t> next(n + 1, 0);
  // A star may match nothing, so being before it means also being after it. Forward order
  // makes one pass enough for runs of stars.
  auto close = [this, n](std::vector<uint8_t>& states) {
    for (size_t i = 0; i < n; ++i) {
      const TokenKind k = tokens_[i].kind;
      if (states[i] && (k == TokenKind::kStar || k == TokenKind::kDoubleStar)) states[i + 1] = 1;
    }
  };
  cur[0] = 1;
  close(cur);

  const bool flat = syntax_ == GlobSyntax::kFlat;
  for (const char c : text) {
    std::fill(next.begin(), next.end(), 0);
    bool any = false;
    for (size_t i = 0; i < n; ++i) {
      if (!cur[i]) continue;
      const Token& tok = tokens_[i];
      bool advance = false;
      switch (tok.kind) {
        case TokenKind::kChar:
          advance = c == tok.ch;
          break;
        case TokenKind::kAnyChar:
          advance = flat || c != '/';
          break;
        case TokenKind::kClass:
          advance = tok.set.test(static_cast<unsigned char>(c));
          break;
        case TokenKind::kStar:
          if (c != '/') {
            next[i] = 1;
            any = true;
          }
          break;
        case TokenKind::kDoubleStar:
          next[i] = 1;
          any = true;
          break;
      }
      if (advance) {
        next[i + 1] = 1;
        any = true;
      }
    }
    if (!any) return false;
    close(next);
    cur.swap(next);
  }
  return cur[n] != 0;
}

Status validate_glob(std::string_view pattern) {
  auto compiled = PathGlob::compile(pattern, GlobSyntax::kFlat);
  if (!compiled) return compiled.error();
  return {};
}

bool glob_matches(std::string_view pattern, std::string_view text, GlobSyntax syntax) {
  auto compiled = PathGlob::compile(pattern, syntax);
  return compiled && compiled->matches(text);
}

}  // namespace openshell::policy
