#pragma once
// The TLS stream the upstream side speaks (core/wire.cpp reads and writes it too): OpenSSL
// through Asio, over a socket its owner keeps, so that the socket's core::Deadline cancels its
// operations.

#include "core/net.hpp"

#include <boost/asio/ssl/stream.hpp>

namespace cachalot::core {
using TlsStream = net::ssl::stream<tcp::socket&>;
}  // namespace cachalot::core
