#include "cachalot/http/cache_control.hpp"

#include "cachalot/http/headers.hpp"
#include "cachalot/http/structured_field.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

namespace cachalot::http {
namespace {

bool is_tchar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Splits "a, b=1, c=\"x, y\"" at commas outside quoted strings; calls f(name, value, quoted).
// Returns false when the list is malformed (RFC 9110 §5.6: token names, quoted-strings closed).
template <class F>
bool for_each_directive(std::string_view list, F&& f) {
    bool well_formed = true;
    std::size_t i = 0;
    while (i < list.size()) {
        // name
        std::size_t start = i;
        while (i < list.size() && list[i] != ',' && list[i] != '=') ++i;
        auto name = trim(list.substr(start, i - start));
        std::string value;
        bool has_value = false, quoted = false;
        if (i < list.size() && list[i] == '=') {
            has_value = true;
            ++i;
            while (i < list.size() && (list[i] == ' ' || list[i] == '\t')) ++i;
            if (i < list.size() && list[i] == '"') {
                quoted = true;
                ++i;
                while (i < list.size() && list[i] != '"') {
                    if (list[i] == '\\' && i + 1 < list.size()) ++i;  // quoted-pair
                    value += list[i++];
                }
                if (i < list.size()) ++i;  // closing quote
                else well_formed = false;
                const auto after = i;
                while (i < list.size() && list[i] != ',') ++i;  // anything after it is ignored
                if (!trim(list.substr(after, i - after)).empty()) well_formed = false;
            } else {
                std::size_t vstart = i;
                while (i < list.size() && list[i] != ',') ++i;
                value = std::string(trim(list.substr(vstart, i - vstart)));
            }
        }
        if (i < list.size() && list[i] == ',') ++i;
        if (!std::all_of(name.begin(), name.end(), is_tchar) || (name.empty() && has_value)) well_formed = false;
        if (!name.empty()) f(to_lower(name), has_value, value, quoted);
    }
    return well_formed;
}

std::vector<std::string> field_names(std::string_view list) {
    std::vector<std::string> names;
    while (!list.empty()) {
        auto comma = list.find(',');
        auto name = trim(list.substr(0, comma));
        if (!name.empty()) names.push_back(to_lower(name));
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return names;
}

constexpr std::array<std::string_view, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kDays{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> kLongDays{"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                    "Thursday", "Friday", "Saturday"};

std::optional<int> number(std::string_view s, std::size_t digits) {
    if (s.size() != digits) return std::nullopt;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

// Day and month names and "GMT" are compared without regard to case: RFC 9110 §5.6.7 asks
// recipients to be lenient there (senders must not be, so only a few origins need it).
std::optional<int> month_of(std::string_view m) {
    for (std::size_t i = 0; i < kMonths.size(); ++i)
        if (iequals(m, kMonths[i])) return static_cast<int>(i) + 1;
    return std::nullopt;
}

template <std::size_t N>
bool one_of(std::string_view name, const std::array<std::string_view, N>& names) {
    return std::any_of(names.begin(), names.end(), [&](std::string_view n) { return iequals(name, n); });
}

// "HH:MM:SS"
bool parse_time_of_day(std::string_view s, int& h, int& m, int& sec) {
    if (s.size() != 8 || s[2] != ':' || s[5] != ':') return false;
    auto hh = number(s.substr(0, 2), 2), mm = number(s.substr(3, 2), 2), ss = number(s.substr(6, 2), 2);
    if (!hh || !mm || !ss || *hh > 23 || *mm > 59 || *ss > 60) return false;
    h = *hh;
    m = *mm;
    sec = std::min(*ss, 59);  // a leap second reads as the second before it
    return true;
}

std::optional<Time> make_time(int year, int month, int day, int h, int m, int s) {
    using namespace std::chrono;
    year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                       std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) return std::nullopt;
    return sys_days{ymd} + hours{h} + minutes{m} + seconds{s};
}

}  // namespace

std::optional<Seconds> parse_delta_seconds(std::string_view text) {
    if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    long long v = 0;
    for (char c : text) {
        v = v * 10 + (c - '0');
        if (v >= kMaxDelta.count()) return kMaxDelta;
    }
    return Seconds{v};
}

CacheControl parse_cache_control(std::string_view value) {
    CacheControl cc;
    // A delta directive seen twice with different values, or with an invalid value, is 0.
    auto delta = [](std::optional<Seconds>& slot, bool has_value, const std::string& v) {
        auto parsed = has_value ? parse_delta_seconds(v) : std::nullopt;
        Seconds s = parsed.value_or(Seconds{0});
        if (slot && *slot != s) s = Seconds{0};
        slot = s;
    };
    cc.malformed = !for_each_directive(value, [&](const std::string& name, bool has_value, const std::string& v, bool) {
        if (name == "max-age") delta(cc.max_age, has_value, v);
        else if (name == "s-maxage") delta(cc.s_maxage, has_value, v);
        else if (name == "stale-while-revalidate") delta(cc.stale_while_revalidate, has_value, v);
        else if (name == "stale-if-error") delta(cc.stale_if_error, has_value, v);
        else if (name == "min-fresh") delta(cc.min_fresh, has_value, v);
        else if (name == "max-stale") {
            if (!has_value) cc.max_stale = kMaxDelta;
            else delta(cc.max_stale, true, v);
        } else if (name == "no-cache") {
            if (has_value) {
                for (auto& f : field_names(v)) cc.no_cache_fields.push_back(f);
            } else {
                cc.no_cache = true;
            }
        } else if (name == "private") {
            if (has_value) {
                for (auto& f : field_names(v)) cc.private_fields.push_back(f);
            } else {
                cc.private_ = true;
            }
        } else if (name == "no-store") cc.no_store = true;
        else if (name == "public") cc.public_ = true;
        else if (name == "must-revalidate") cc.must_revalidate = true;
        else if (name == "proxy-revalidate") cc.proxy_revalidate = true;
        else if (name == "no-transform") cc.no_transform = true;
        else if (name == "must-understand") cc.must_understand = true;
        else if (name == "immutable") cc.immutable = true;
        else if (name == "only-if-cached") cc.only_if_cached = true;
    });
    return cc;
}

std::optional<std::string> targeted_cache_control(std::string_view value) {
    const auto members = parse_dictionary(value);
    if (!members) return std::nullopt;
    using Type = StructuredItem::Type;
    static constexpr std::array<std::string_view, 4> kIntegers{"max-age", "s-maxage", "stale-while-revalidate",
                                                               "stale-if-error"};
    static constexpr std::array<std::string_view, 9> kBooleans{
        "no-store",         "no-cache",     "private",         "public",   "must-revalidate",
        "proxy-revalidate", "no-transform", "must-understand", "immutable"};
    std::string out;
    auto add = [&](std::string_view directive) {
        if (!out.empty()) out += ", ";
        out += directive;
    };
    for (const auto& [key, item] : *members) {
        if (std::find(kIntegers.begin(), kIntegers.end(), key) != kIntegers.end()) {
            if (item.type != Type::Integer || item.integer < 0) return std::nullopt;
            add(key + "=" + std::to_string(item.integer));
        } else if (std::find(kBooleans.begin(), kBooleans.end(), key) != kBooleans.end()) {
            if (item.type == Type::Boolean) {
                if (item.boolean) add(key);
            } else if (item.type == Type::String && (key == "no-cache" || key == "private")) {
                // Field names: tokens, so nothing in them needs escaping in a quoted-string.
                if (!std::all_of(item.text.begin(), item.text.end(), [](char c) { return is_tchar(c) || c == ',' || c == ' '; }))
                    return std::nullopt;
                add(key + "=\"" + item.text + "\"");
            } else {
                return std::nullopt;
            }
        }
    }
    return out;
}

std::optional<Time> parse_http_date(std::string_view t, Time now) {
    int h = 0, m = 0, s = 0;
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (t.size() == 29 && t[3] == ',' && t[4] == ' ' && t[7] == ' ' && t[11] == ' ' && t[16] == ' ' &&
        t[25] == ' ' && iequals(t.substr(26), "GMT")) {
        if (!one_of(t.substr(0, 3), kDays)) return std::nullopt;
        auto day = number(t.substr(5, 2), 2);
        auto month = month_of(t.substr(8, 3));
        auto year = number(t.substr(12, 4), 4);
        if (!day || !month || !year || !parse_time_of_day(t.substr(17, 8), h, m, s)) return std::nullopt;
        return make_time(*year, *month, *day, h, m, s);
    }
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
    if (auto comma = t.find(", "); comma != std::string_view::npos && comma >= 6 && t.size() == comma + 24) {
        if (!one_of(t.substr(0, comma), kLongDays)) return std::nullopt;
        auto rest = t.substr(comma + 2);  // "06-Nov-94 08:49:37 GMT"
        if (rest[2] != '-' || rest[6] != '-' || rest[9] != ' ' || rest[18] != ' ' || !iequals(rest.substr(19), "GMT"))
            return std::nullopt;
        auto day = number(rest.substr(0, 2), 2);
        auto month = month_of(rest.substr(3, 3));
        auto yy = number(rest.substr(7, 2), 2);
        if (!day || !month || !yy || !parse_time_of_day(rest.substr(10, 8), h, m, s)) return std::nullopt;
        // The most recent year with those two digits that is not more than 50 years ahead.
        int current = static_cast<int>(std::chrono::year_month_day{std::chrono::floor<std::chrono::days>(now)}.year());
        int year = current - current % 100 + *yy;
        if (year > current + 50) year -= 100;
        return make_time(year, *month, *day, h, m, s);
    }
    // asctime: "Sun Nov  6 08:49:37 1994"
    if (t.size() == 24 && t[3] == ' ' && t[7] == ' ' && t[10] == ' ' && t[19] == ' ') {
        if (!one_of(t.substr(0, 3), kDays)) return std::nullopt;
        auto month = month_of(t.substr(4, 3));
        auto day_text = t.substr(8, 2);
        std::optional<int> day = day_text[0] == ' ' ? number(day_text.substr(1), 1) : number(day_text, 2);
        auto year = number(t.substr(20, 4), 4);
        if (!day || !month || !year || !parse_time_of_day(t.substr(11, 8), h, m, s)) return std::nullopt;
        return make_time(*year, *month, *day, h, m, s);
    }
    return std::nullopt;
}

std::string format_http_date(Time t) {
    using namespace std::chrono;
    auto day = floor<days>(t);
    year_month_day ymd{day};
    hh_mm_ss hms{t - day};
    weekday wd{day};
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02d:%02d:%02d GMT", kDays[wd.c_encoding()].data(),
                  static_cast<unsigned>(ymd.day()), kMonths[static_cast<unsigned>(ymd.month()) - 1].data(),
                  static_cast<int>(ymd.year()), static_cast<int>(hms.hours().count()),
                  static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
    return buf;
}

}  // namespace cachalot::http
