// Where credentials come from: containers-auth.json(5) order, namespaces, helpers, login files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "factory/registry/credentials.hpp"
#include "test_dir.hpp"

using namespace factory::registry;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& text, unsigned mode = 0644) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
}

// A HOME of its own with no XDG or REGISTRY_AUTH_FILE variables.
class CredentialsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        home_ = dir_.path() / "home";
        fs::create_directories(home_);
        ::setenv("HOME", home_.c_str(), 1);
        for (const char* v :
             {"XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG"})
            ::unsetenv(v);
        old_path_ = std::getenv("PATH") ? std::getenv("PATH") : "";
    }
    void TearDown() override { ::setenv("PATH", old_path_.c_str(), 1); }
    factory::testing::TestDir dir_;
    fs::path home_;
    std::string old_path_;
};

std::string auth(const std::string& user_pass) {
    return base64_encode(user_pass);
}

} // namespace

TEST_F(CredentialsTest, Base64RoundTrips) {
    for (std::string s : {"", "a", "ab", "abc", "user:pässword:with:colons"})
        EXPECT_EQ(*base64_decode(base64_encode(s)), s);
    EXPECT_EQ(base64_encode("user:pw"), "dXNlcjpwdw==");
    EXPECT_FALSE(base64_decode("abc"));
    EXPECT_FALSE(base64_decode("a*c="));
}

TEST_F(CredentialsTest, NoFilesMeansAnonymous) {
    EXPECT_FALSE(find_credentials("r.io", "x/y"));
}

TEST_F(CredentialsTest, FilesAreSearchedInOrderFirstKnowingFileWins) {
    write(home_ / ".docker/config.json", R"({"auths":{"r.io":{"auth":")" + auth("docker:d") +
                                             R"("}, "other.io":{"auth":")" + auth("o:o") +
                                             R"("}}})");
    write(home_ / ".config/containers/auth.json",
          R"({"auths":{"r.io":{"auth":")" + auth("podman:p") + R"("}}})");
    auto c = find_credentials("r.io", "x");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->username, "podman");
    EXPECT_EQ(c->password, "p");
    EXPECT_EQ(find_credentials("other.io", "x")->username, "o");
    save_login("r.io", {"mine", "secret", "", ""});
    EXPECT_EQ(find_credentials("r.io", "x")->username, "mine");
    struct stat st {};
    ASSERT_EQ(::stat(factory_auth_file().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_TRUE(remove_login("r.io"));
    EXPECT_FALSE(remove_login("r.io"));
    EXPECT_EQ(find_credentials("r.io", "x")->username, "podman");
    ::setenv("REGISTRY_AUTH_FILE", (dir_.path() / "explicit.json").c_str(), 1);
    write(dir_.path() / "explicit.json",
          R"({"auths":{"r.io":{"auth":")" + auth("env:e") + R"("}}})");
    EXPECT_EQ(find_credentials("r.io", "x")->username, "env");
}

TEST_F(CredentialsTest, LongestNamespaceMatchWinsAndUrlKeysAreHosts) {
    write(home_ / ".docker/config.json", R"({"auths":{
        "quay.io":{"auth":")" + auth("host:h") +
                                             R"("},
        "quay.io/team":{"auth":")" + auth("team:t") +
                                             R"("},
        "quay.io/team/app":{"auth":")" + auth("app:a") +
                                             R"("},
        "https://index.docker.io/v1/":{"auth":")" +
                                             auth("hub:x") + R"("}}})");
    EXPECT_EQ(find_credentials("quay.io", "team/app")->username, "app");
    EXPECT_EQ(find_credentials("quay.io", "team/other")->username, "team");
    EXPECT_EQ(find_credentials("quay.io", "teamx/app")->username, "host");
    EXPECT_EQ(find_credentials("docker.io", "library/debian")->username, "hub");
    EXPECT_FALSE(find_credentials("quay.io.evil.com", "team/app"));
}

TEST_F(CredentialsTest, CredentialHelpersAreAskedWithTheHost) {
    auto bin = dir_.path() / "bin";
    write(bin / "docker-credential-test",
          "#!/bin/sh\nread host\n[ \"$1\" = get ] || exit 3\n"
          "case $host in r.io) echo "
          "'{\"ServerURL\":\"r.io\",\"Username\":\"helped\",\"Secret\":\"s3\"}';;\n"
          "*) echo 'credentials not found in native keychain'; exit 1;; esac\n",
          0755);
    write(bin / "docker-credential-broken", "#!/bin/sh\necho garbage\n", 0755);
    ::setenv("PATH", (bin.string() + ":" + old_path_).c_str(), 1);
    write(
        home_ / ".docker/config.json",
        R"({"credHelpers":{"r.io":"test","bad.io":"broken"},"credsStore":"test","auths":{"r.io":{"auth":")" +
            auth("file:f") + R"("}}})");
    auto c = find_credentials("r.io", "x");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->username, "helped");
    EXPECT_EQ(c->password, "s3");
    EXPECT_FALSE(find_credentials("unknown.io", "x")); // credsStore: not found → anonymous
    try {
        find_credentials("bad.io", "x");
        FAIL() << "a broken helper must be an error";
    } catch (const factory::Error& e) {
        EXPECT_NE(std::string(e.what()).find("docker-credential-broken get"), std::string::npos)
            << e.what();
        EXPECT_EQ(std::string(e.what()).find("garbage"), std::string::npos) << e.what();
    }
}

TEST_F(CredentialsTest, AHelperThatNeverReadsItsInputIsAnErrorNotASignal) {
    // It closes its stdin at once: when that happens before the server name is written (a
    // matter of scheduling, hence the rounds), the write gets EPIPE. A SIGPIPE there used to kill
    // the whole process.
    auto bin = dir_.path() / "bin";
    write(bin / "docker-credential-deaf", "#!/bin/sh\nexec 0<&-\necho '{}'\nexit 1\n", 0755);
    ::setenv("PATH", (bin.string() + ":" + old_path_).c_str(), 1);
    write(home_ / ".docker/config.json", R"({"credHelpers":{"deaf.io":"deaf"}})");
    for (int i = 0; i < 20; ++i) {
        try {
            find_credentials("deaf.io", "x");
            FAIL() << "a helper that fails must be an error";
        } catch (const factory::Error& e) {
            EXPECT_NE(std::string(e.what()).find("docker-credential-deaf get"), std::string::npos)
                << e.what();
        }
    }
}

TEST_F(CredentialsTest, AMalformedAuthFieldIsAnErrorWithoutTheSecret) {
    write(home_ / ".docker/config.json",
          R"({"auths":{"r.io":{"auth":")" + auth("nocolon") + R"("}}})");
    try {
        find_credentials("r.io", "x");
        FAIL();
    } catch (const factory::Error& e) {
        EXPECT_NE(std::string(e.what()).find("not base64 of user:password"), std::string::npos);
        EXPECT_EQ(std::string(e.what()).find("nocolon"), std::string::npos);
    }
}
