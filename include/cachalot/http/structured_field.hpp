#pragma once
// Structured Field Values for HTTP (RFC 8941), the part a cache needs: a Dictionary, parsed as
// §4.2 says (strictly: anything that does not parse fails the whole field). Parameters are
// parsed and dropped; inner lists are parsed and kept only as their kind.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::http {

/// One dictionary member's value.
struct StructuredItem {
    enum class Type { Integer, Decimal, String, Token, ByteSequence, Boolean, InnerList };
    Type type = Type::Boolean;
    std::int64_t integer = 0;  // Integer
    bool boolean = true;       // Boolean (a member without a value is true)
    std::string text;          // String (unescaped), Token, Decimal and ByteSequence as written
};

struct StructuredMember {
    std::string key;
    StructuredItem value;
};

/// The members of a Dictionary in order, a later duplicate key replacing the earlier member's
/// value in place (§4.2.2); nothing when `text` is not a valid Dictionary.
std::optional<std::vector<StructuredMember>> parse_dictionary(std::string_view text);

}  // namespace cachalot::http
