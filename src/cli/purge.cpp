#include "cli/purge.hpp"

#include "cachalot/http/target.hpp"
#include "core/net.hpp"

#include <boost/json.hpp>

#include <cstdlib>
#include <fstream>
#include <ostream>

namespace cachalot::cli {
namespace {

constexpr const char* kUsage =
    "Usage: cachalot purge [--admin URL] [--token-file FILE] [--soft] WHAT\n"
    "  WHAT is one of:\n"
    "    --url URL [--host HOST]     every variant of a URL (absolute, or a path with --host)\n"
    "    --prefix PATH --host HOST   every URL under PATH, by whole segments\n"
    "    --tag TAG [--tag TAG ...]   every response naming one of the tags\n"
    "    --all                       everything\n"
    "  --admin URL        the node's admin listener (default http://127.0.0.1:9090)\n"
    "  --token-file FILE  the admin token (default: $CACHALOT_ADMIN_TOKEN, if set)\n"
    "  --soft             mark stale (revalidated next time) instead of removing\n";

int usage(std::ostream& err, const std::string& why) {
    err << "cachalot purge: " << why << "\n" << kUsage;
    return 2;
}

}  // namespace

int purge(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    std::string admin = "http://127.0.0.1:9090", token_file;
    boost::json::object body;
    boost::json::array tags;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
        if (a == "--soft") {
            body["soft"] = true;
        } else if (a == "--all") {
            body["all"] = true;
        } else if (a == "-h" || a == "--help") {
            out << kUsage;
            return 0;
        } else if (a == "--admin" || a == "--token-file" || a == "--url" || a == "--prefix" || a == "--host" ||
                   a == "--tag") {
            const auto* v = value();
            if (!v) return usage(err, a + " needs a value");
            if (a == "--admin") admin = *v;
            else if (a == "--token-file") token_file = *v;
            else if (a == "--tag") tags.emplace_back(*v);
            else body[a.substr(2)] = *v;
        } else {
            return usage(err, "unknown argument '" + a + "'");
        }
    }
    if (!tags.empty()) body["tags"] = std::move(tags);

    const auto target = http::parse_request_target(admin);
    if (!target || !target->authority || admin.rfind("http://", 0) != 0)
        return usage(err, "--admin must be an http:// URL, such as http://127.0.0.1:9090");
    std::string token;
    if (!token_file.empty()) {
        std::ifstream in(token_file);
        if (!in) return usage(err, "cannot read " + token_file);
        std::getline(in, token);
    } else if (const char* env = std::getenv("CACHALOT_ADMIN_TOKEN")) {
        token = env;
    }

    try {
        net::io_context ioc;
        tcp::resolver resolver(ioc);
        beast::tcp_stream stream(ioc);
        stream.expires_after(std::chrono::seconds(10));
        const auto& authority = *target->authority;
        auto host = authority.host;
        if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
        stream.connect(resolver.resolve(host, authority.port.empty() ? "80" : authority.port));
        bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/purge", 11};
        req.set(bhttp::field::host, authority.to_string());
        req.set(bhttp::field::content_type, "application/json");
        if (!token.empty()) req.set(bhttp::field::authorization, "Bearer " + token);
        req.body() = boost::json::serialize(body);
        req.prepare_payload();
        bhttp::write(stream, req);
        beast::flat_buffer buffer;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(stream, buffer, res);
        (res.result_int() < 300 ? out : err) << res.body();
        return res.result_int() < 300 ? 0 : 1;
    } catch (const std::exception& e) {
        err << "cachalot purge: " << admin << ": " << e.what() << "\n";
        return 1;
    }
}

}  // namespace cachalot::cli
