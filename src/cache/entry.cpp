#include "cachalot/cache/entry.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstring>

namespace cachalot::cache {
namespace {

// Layout: "CACE" | u16 version | u16 reserved | u64 checksum of everything after it | payload.
// Payload integers are little-endian fixed width; strings are u32 length + bytes.
constexpr char kMagic[4] = {'C', 'A', 'C', 'E'};
constexpr std::size_t kHeaderSize = 4 + 2 + 2 + 8;
constexpr std::size_t kMaxCount = 1u << 16;  // headers, Vary names or purge slots per entry

template <class T>
void put_int(std::string& out, T v) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));
    out.append(buf, sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
    put_int<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}

class Reader {
public:
    explicit Reader(std::string_view data) : data_(data) {}
    template <class T>
    bool get(T& v) {
        if (data_.size() < sizeof(T)) return false;
        std::memcpy(&v, data_.data(), sizeof(T));
        data_.remove_prefix(sizeof(T));
        return true;
    }
    bool get(std::string& s) {
        std::uint32_t n = 0;
        if (!get(n) || data_.size() < n) return false;
        s.assign(data_.data(), n);
        data_.remove_prefix(n);
        return true;
    }
    bool done() const { return data_.empty(); }

private:
    std::string_view data_;
};

}  // namespace

std::string encode_entry(const Entry& e) {
    std::string out(kHeaderSize, '\0');
    put_int<std::uint16_t>(out, static_cast<std::uint16_t>(e.status));
    put_int<std::int64_t>(out, e.request_time);
    put_int<std::int64_t>(out, e.response_time);
    put_int<std::int64_t>(out, e.lifetime_jitter);
    put_int<std::uint32_t>(out, static_cast<std::uint32_t>(e.headers.size()));
    for (const auto& [name, value] : e.headers) {
        put_string(out, name);
        put_string(out, value);
    }
    put_int<std::uint32_t>(out, static_cast<std::uint32_t>(e.vary.size()));
    for (const auto& v : e.vary) put_string(out, v);
    put_string(out, e.variant);
    put_string(out, e.vary_epoch);
    put_int<std::int64_t>(out, e.fetched_ms);
    put_int<std::uint32_t>(out, static_cast<std::uint32_t>(e.purge_slots.size()));
    for (const auto slot : e.purge_slots) put_int<std::uint16_t>(out, slot);
    put_string(out, e.body);

    std::memcpy(out.data(), kMagic, 4);
    const std::uint16_t version = kEntryVersion, reserved = 0;
    std::memcpy(out.data() + 4, &version, 2);
    std::memcpy(out.data() + 6, &reserved, 2);
    const std::uint64_t checksum = XXH3_64bits(out.data() + kHeaderSize, out.size() - kHeaderSize);
    std::memcpy(out.data() + 8, &checksum, 8);
    return out;
}

std::optional<Entry> decode_entry(std::string_view bytes) {
    if (bytes.size() < kHeaderSize || std::memcmp(bytes.data(), kMagic, 4) != 0) return std::nullopt;
    std::uint16_t version = 0, reserved = 0;
    std::uint64_t checksum = 0;
    std::memcpy(&version, bytes.data() + 4, 2);
    std::memcpy(&reserved, bytes.data() + 6, 2);
    std::memcpy(&checksum, bytes.data() + 8, 8);
    if (version != kEntryVersion || reserved != 0) return std::nullopt;
    auto payload = bytes.substr(kHeaderSize);
    if (XXH3_64bits(payload.data(), payload.size()) != checksum) return std::nullopt;

    Reader r(payload);
    Entry e;
    std::uint16_t status = 0;
    std::uint32_t count = 0;
    if (!r.get(status) || !r.get(e.request_time) || !r.get(e.response_time) || !r.get(e.lifetime_jitter) || !r.get(count) || count > kMaxCount)
        return std::nullopt;
    e.status = status;
    e.headers.resize(count);
    for (auto& [name, value] : e.headers)
        if (!r.get(name) || !r.get(value)) return std::nullopt;
    if (!r.get(count) || count > kMaxCount) return std::nullopt;
    e.vary.resize(count);
    for (auto& v : e.vary)
        if (!r.get(v)) return std::nullopt;
    if (!r.get(e.variant) || !r.get(e.vary_epoch) || !r.get(e.fetched_ms)) return std::nullopt;
    if (!r.get(count) || count > kMaxCount) return std::nullopt;
    e.purge_slots.resize(count);
    for (auto& slot : e.purge_slots)
        if (!r.get(slot)) return std::nullopt;
    if (!r.get(e.body) || !r.done()) return std::nullopt;
    if (e.status < 100 || e.status > 999) return std::nullopt;
    return e;
}

}  // namespace cachalot::cache
