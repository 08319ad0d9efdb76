# The fuzz targets and the sources they are built from: shared by the libFuzzer build
# (tests/fuzz/CMakeLists.txt) and the test build's corpus replay (tests/CMakeLists.txt), so that a
# source the targets need and this list lacks breaks the test build too.
set(FUZZ_TARGETS request_head origin_response cache_control http_date range entry l2_envelope config dns)
set(FUZZ_CORE_SOURCES
  ${PROJECT_SOURCE_DIR}/src/http/cache_control.cpp
  ${PROJECT_SOURCE_DIR}/src/http/conditional.cpp
  ${PROJECT_SOURCE_DIR}/src/http/freshness.cpp
  ${PROJECT_SOURCE_DIR}/src/http/headers.cpp
  ${PROJECT_SOURCE_DIR}/src/http/range.cpp
  ${PROJECT_SOURCE_DIR}/src/http/response_parser.cpp
  ${PROJECT_SOURCE_DIR}/src/http/structured_field.cpp
  ${PROJECT_SOURCE_DIR}/src/http/target.cpp
  ${PROJECT_SOURCE_DIR}/src/cache/entry.cpp
  ${PROJECT_SOURCE_DIR}/src/cache/key.cpp
  ${PROJECT_SOURCE_DIR}/src/config/config.cpp
  ${PROJECT_SOURCE_DIR}/src/core/cidr.cpp
  ${PROJECT_SOURCE_DIR}/src/store/redis/envelope.cpp
  ${PROJECT_SOURCE_DIR}/src/upstream/dns.cpp)
