#pragma once
// The one name Cachalot uses for Beast's HTTP namespace.

namespace boost::beast::http {}

namespace cachalot {
namespace bhttp = boost::beast::http;
}  // namespace cachalot
