#pragma once
// The one place that names Boost's namespaces for the code in src/.

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "cachalot/core/bhttp.hpp"

namespace cachalot {
namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = boost::asio::ip::tcp;
}  // namespace cachalot
