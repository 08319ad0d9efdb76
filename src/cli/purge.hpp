#pragma once
// `cachalot purge`: sends a purge to a running node's admin listener (POST /purge), for
// operators and scripts. Its options build the same JSON the API documents.

#include <iosfwd>
#include <string>
#include <vector>

namespace cachalot::cli {

/// Runs `cachalot purge ARGS...` (`args` without "purge"); returns the exit code: 0 when the
/// node answered 2xx, 1 when it refused or could not be reached, 2 for a usage error.
int purge(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace cachalot::cli
