#pragma once
// DNS messages for the upstream resolver (resolver.nameservers): an A or AAAA query, and its
// response read without trusting it. Answers come over UDP from a nameserver the config names;
// a response that is malformed, carries another id, is no response, or answers another question
// is not one (anyone on the path can send datagrams). Names are compared case-insensitively;
// compression pointers are followed only backwards, so a response cannot make a loop.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::upstream::dns {

enum class Type : std::uint16_t { A = 1, AAAA = 28 };

/// A query for `name`'s `type` records, recursion desired. Empty when `name` is no DNS name
/// (labels of 1 to 63 bytes, 253 in all; a trailing dot is allowed).
std::string query(std::uint16_t id, std::string_view name, Type type);

struct Answer {
    unsigned rcode = 0;                  // 0: no error; 3: no such name
    std::vector<std::string> addresses;  // the `type` records of the answer section, as text
    std::uint32_t ttl = 0;               // the smallest TTL among them
};

/// The response to query(id, name, type) that `bytes` holds, or nothing when it is not one.
std::optional<Answer> parse(std::string_view bytes, std::uint16_t id, std::string_view name, Type type);

}  // namespace cachalot::upstream::dns
