#pragma once
// Logging on spdlog: the process log on stderr, the access log (one line per request) on stdout.

#include "cachalot/config/config.hpp"

#include <string_view>

namespace cachalot::log {

/// Configures spdlog's default logger and the access log. Call once, before threads start.
void setup(const config::Logging& cfg);

/// One answered request.
struct AccessRecord {
    std::string_view client;
    std::string_view method;
    std::string_view target;
    unsigned status = 0;
    std::size_t bytes = 0;      // response body bytes sent
    double duration = 0;        // seconds, request head to end of response
    double upstream_time = -1;  // seconds spent on the origin; negative when it was not asked
    std::string_view route;     // "" when no route matched
};

/// Applies a reloaded configuration's level (any thread; the format stays). Whether a request
/// goes to the access log is its own configuration's logging.access_log: the caller's test.
void reconfigure(const config::Logging& cfg);

/// Writes one access-log line, text or JSON as configured.
void access(const AccessRecord& r);

/// JSON string escaping for log values (quotes, backslashes, control characters).
std::string json_escape(std::string_view s);

}  // namespace cachalot::log
