#include "factory/util/error.hpp"

#include <cstring>

namespace factory {

std::string errno_string(int err) {
    char buf[256];
    // GNU strerror_r returns the message, which may not be buf.
    return ::strerror_r(err, buf, sizeof buf);
}

} // namespace factory
