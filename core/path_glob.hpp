// Path globs for binaries (`binaries[].path`) and L7 request paths (`path`, rule paths, query
// values). Two syntaxes share one matcher:
//   kSegments (binaries, L7 request paths): '*' matches within one path segment (never '/'), '**' (two or more
//             stars) matches any run including '/', '?' one character other than '/', and a
//             class never matches '/'. So "/**" matches every absolute path.
//   kFlat (query values; OpenShell's request-path semantics): '*' and '**' match any run, '/' too,
//             '?' any one character, classes may match '/' when negated.
// Classes: "[abc]", "[a-z]", "[!x]" (also "[^x]"); a ']' right after '[' or '[!' is literal.
// There is no backslash escape (a backslash is an ordinary character); "[*]" matches a literal
// star.
// Matching simulates the pattern as an NFA over the text, O(pattern x text) in the worst case,
// so "a*a*a*a*...b" against a long run of 'a' costs microseconds rather than exponential time.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace openshell::policy {

enum class GlobSyntax : uint8_t { kSegments, kFlat };

class PathGlob {
 public:
  static constexpr GlobSyntax kSegments = GlobSyntax::kSegments;
  static constexpr GlobSyntax kFlat = GlobSyntax::kFlat;

  [[nodiscard]] static Result<PathGlob> compile(std::string_view pattern, GlobSyntax syntax);

  [[nodiscard]] bool matches(std::string_view text) const;

  [[nodiscard]] const std::string& pattern() const { return pattern_; }
  [[nodiscard]] GlobSyntax syntax() const { return syntax_; }
  // True when the pattern has no wildcard or class, so matching is plain equality.
  [[nodiscard]] bool is_literal() const { return literal_; }

 private:
  enum class TokenKind : uint8_t { kChar, kAnyChar, kClass, kStar, kDoubleStar };
  struct Token {
    TokenKind kind = TokenKind::kChar;
    char ch = 0;
    std::bitset<256> set;  // kClass: the bytes it accepts, negation already applied
  };

  std::string pattern_;
  GlobSyntax syntax_ = GlobSyntax::kFlat;
  bool literal_ = true;
  std::vector<Token> tokens_;
};

// Ok when `pattern` is a well-formed glob: classes closed and non-empty, ranges ascending, no NUL.
[[nodiscard]] Status validate_glob(std::string_view pattern);

// Compiles and matches in one go; a malformed pattern matches nothing.
[[nodiscard]] bool glob_matches(std::string_view pattern, std::string_view text, GlobSyntax syntax);

}  // namespace openshell::policy
