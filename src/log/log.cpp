#include "cachalot/log/log.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace cachalot::log {
namespace {

std::shared_ptr<spdlog::logger> access_logger;  // made once, at setup
bool access_json = false;

}  // namespace

void setup(const config::Logging& cfg) {
    auto main = spdlog::stderr_logger_mt("cachalot");
    main->set_level(spdlog::level::from_str(cfg.level));
    if (cfg.format == config::LogFormat::Json)
        main->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%v"})");
    else
        main->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z [%l] %v");
    main->flush_on(spdlog::level::info);
    spdlog::set_default_logger(main);

    access_logger = spdlog::stdout_logger_mt("access");
    access_logger->set_pattern("%v");
    access_logger->set_level(spdlog::level::info);
    access_logger->flush_on(spdlog::level::info);
    access_json = cfg.format == config::LogFormat::Json;
}

void reconfigure(const config::Logging& cfg) {
    spdlog::default_logger()->set_level(spdlog::level::from_str(cfg.level));
}

std::string json_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c == 0x7f) out += fmt::format("\\u{:04x}", c);
                else out += static_cast<char>(c);
        }
    }
    return out;
}

void access(const AccessRecord& r) {
    if (!access_logger) return;
    std::string upstream = r.upstream_time < 0 ? "-" : fmt::format("{:.6f}", r.upstream_time);
    if (access_json) {
        access_logger->info(
            R"({{"time":"{}","client":"{}","method":"{}","path":"{}","status":{},"bytes":{},"duration":{:.6f},"upstream_time":{},"route":"{}"}})",
            fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(std::time(nullptr))), json_escape(r.client),
            json_escape(r.method), json_escape(r.target), r.status, r.bytes, r.duration,
            r.upstream_time < 0 ? "null" : upstream, json_escape(r.route));
    } else {
        // Paths are escaped too, so one request is always one line.
        access_logger->info("{} \"{} {}\" {} {} {:.6f} {} route={}", r.client, r.method, json_escape(r.target),
                            r.status, r.bytes, r.duration, upstream, r.route.empty() ? "-" : r.route);
    }
}

}  // namespace cachalot::log
