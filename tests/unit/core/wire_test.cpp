#include "core/wire.hpp"

#include <boost/beast/http/write.hpp>
#include <catch2/catch.hpp>

#include <sstream>

using namespace cachalot;
using Response = bhttp::response<bhttp::string_body>;

namespace {

// What Beast's serializer writes for the whole message.
template <class Message>
std::string beast_wire(const Message& m) {
    std::ostringstream out;
    out << m;
    return out.str();
}

template <class Message>
std::string our_wire(const Message& m) {
    std::string head = "left alone: ";
    core::serialize_head(m, head);
    return head.substr(12) + m.body();
}

}  // namespace

TEST_CASE("serialize_head writes a response head byte for byte as Beast's serializer does") {
    SECTION("a stored hit: fields in order, repeated names, empty values") {
        Response res{bhttp::status::ok, 11};
        res.set(bhttp::field::content_type, "application/json");
        res.insert("X-Custom-Name", "one");
        res.insert("x-custom-name", "two");
        res.insert("X-Empty", "");
        res.set(bhttp::field::age, "12");
        res.body() = R"({"a":1})";
        res.prepare_payload();
        res.keep_alive(true);
        CHECK(our_wire(res) == beast_wire(res));
    }
    SECTION("HTTP/1.0, closing") {
        Response res{bhttp::status::not_found, 10};
        res.body() = "no";
        res.prepare_payload();
        res.keep_alive(false);
        CHECK(our_wire(res) == beast_wire(res));
    }
    SECTION("a reason phrase the origin chose, and a status Beast has no name for") {
        Response res{bhttp::status::ok, 11};
        res.reason("Fine Thanks");
        CHECK(our_wire(res) == beast_wire(res));
        Response odd{static_cast<bhttp::status>(299), 11};
        odd.set(bhttp::field::content_length, "0");
        CHECK(our_wire(odd) == beast_wire(odd));
        CHECK(our_wire(odd).starts_with("HTTP/1.1 299 <unknown-status>\r\n"));
    }
    SECTION("a 304 and a HEAD answer: a length, no body") {
        Response res{bhttp::status::not_modified, 11};
        res.set(bhttp::field::etag, "\"v1\"");
        CHECK(our_wire(res) == beast_wire(res));
        CHECK(our_wire(res) == "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
        Response head{bhttp::status::ok, 11};
        head.set(bhttp::field::content_length, "1024");
        CHECK(our_wire(head) == beast_wire(head));
    }
}
