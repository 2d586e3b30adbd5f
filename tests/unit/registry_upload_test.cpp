// The Range header of an upload session: how many bytes the registry has.
#include <gtest/gtest.h>

#include "factory/registry/upload.hpp"

using namespace factory::registry;

TEST(RegistryUpload, RangeEndIsTheByteCountTheRegistryHas) {
    EXPECT_EQ(upload_range_end("0-499"), 500u);
    EXPECT_EQ(upload_range_end("bytes=0-1048575"), 1048576u);
    EXPECT_EQ(upload_range_end("0-0"), 0u); // distribution's answer for an empty session
}

TEST(RegistryUpload, MalformedRangesAreRejected) {
    for (const char* r : {"", "-", "0-", "-5", "5-10", "0-x", "10-2", "0-1-2", "bytes 0-9"})
        EXPECT_FALSE(upload_range_end(r).has_value()) << r;
}
