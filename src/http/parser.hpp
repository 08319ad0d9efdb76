#pragma once
// Beast's message parser, less one behaviour: Beast appends a chunked body's trailer fields to
// the message's header section, next to any header field of the same name. RFC 9110 §6.5.1
// forbids that merge (a trailer "Host" or "Authorization" would reach the origin, or the cache,
// as a header). These parsers drop trailer fields; nothing in Cachalot uses them. (Origin
// responses have a parser of their own: http/response_parser.hpp.)

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

namespace cachalot::http {

template <bool isRequest>
class TrailerDroppingParser : public boost::beast::http::parser<isRequest, boost::beast::http::string_body> {
private:
    void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string,
                       boost::beast::string_view value, boost::beast::error_code&) override {
        if (!this->is_header_done()) this->get().insert(name, name_string, value);
    }
};

using RequestParser = TrailerDroppingParser<true>;

}  // namespace cachalot::http
