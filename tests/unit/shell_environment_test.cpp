// The shell module's pure parts: environment records, session accounting (a shell whose
// process is gone doesn't count), ending what a crash left, and the passwd/group/env helpers.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "factory/runtime/process.hpp"
#include "factory/shell/environment.hpp"
#include "factory/shell/session.hpp"
#include "test_dir.hpp"

namespace factory::shell {
namespace {

EnvRecord sample() {
    EnvRecord r;
    r.id = "0123456789abcdef";
    r.name = "devbox-01234567";
    r.image = "example.com/team/devbox:latest";
    r.digest = "sha256:" + std::string(64, 'a');
    r.target = "/src/proj/env/devbox.toml";
    r.project = "/src/proj";
    r.uid = 1000;
    r.container = "factory-env-0123456789abcdef";
    r.runtime = "runc";
    r.runtime_binary = "/usr/bin/runc";
    r.runtime_version = "1.1.5";
    r.state_root = "/run/factory/runc";
    r.init_pid = 4242;
    r.init_start = 987654;
    r.created = 1700000000;
    return r;
}

TEST(EnvRecord, RoundTripsThroughJson) {
    auto r = sample();
    auto back = record_from_json(to_json(r));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->name, r.name);
    EXPECT_EQ(back->digest, r.digest);
    EXPECT_EQ(back->project, r.project);
    EXPECT_EQ(back->uid, 1000u);
    EXPECT_EQ(back->init_pid, 4242);
    EXPECT_EQ(back->init_start, 987654u);
    EXPECT_EQ(back->runtime_choice().state_root, "/run/factory/runc");
    EXPECT_EQ(back->runtime_choice().kind, runtime::RuntimeKind::runc);
}

TEST(EnvRecord, RefusesWhatDoesntHoldTogether) {
    EXPECT_FALSE(record_from_json("not json"));
    EXPECT_FALSE(record_from_json("{}"));
    auto r = sample();
    r.container = "factory-env-ffffffffffffffff"; // another environment's container
    EXPECT_FALSE(record_from_json(to_json(r)));
    r = sample();
    r.id = "../../etc";
    r.container = "factory-env-../../etc";
    EXPECT_FALSE(record_from_json(to_json(r)));
    r = sample();
    r.runtime = "/bin/sh";
    EXPECT_FALSE(record_from_json(to_json(r)));
}

TEST(ProcessStartTime, OfThisProcessOfNoneAndOfAZombie) {
    EXPECT_GT(runtime::process_start_time(::getpid()), 0u);
    EXPECT_EQ(runtime::process_start_time(::getpid()), runtime::process_start_time(::getpid()));
    EXPECT_EQ(runtime::process_start_time(0x3fffffff), 0u);
    pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    for (int i = 0; i < 200 && runtime::process_start_time(child) != 0; ++i)
        ::usleep(10000); // not reaped yet: a zombie once it has exited
    EXPECT_EQ(runtime::process_start_time(child), 0u) << "a zombie holds nothing";
    ::waitpid(child, nullptr, 0);
}

TEST(Environments, RunningMeansTheSameProcessOne) {
    auto r = sample();
    r.init_pid = ::getpid();
    r.init_start = runtime::process_start_time(::getpid());
    EXPECT_TRUE(Environments::running(r));
    r.init_start += 1; // the pid was reused by another process
    EXPECT_FALSE(Environments::running(r));
}

TEST(Environments, ASessionCountsWhileItsProcessHoldsIt) {
    testing::TestDir dir;
    Environments envs(dir.path());
    const std::string id = "0123456789abcdef";
    EXPECT_EQ(envs.live_sessions(id), 0);
    {
        auto session = envs.add_session(id);
        EXPECT_EQ(envs.live_sessions(id), 1);
    }
    EXPECT_EQ(envs.live_sessions(id), 0);
    // A session of a process that died without leaving: its file stays, its lock doesn't.
    pid_t child = ::fork();
    if (child == 0) {
        auto session = envs.add_session(id);
        ::_exit(0); // no destructor runs: like SIGKILL
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(std::filesystem::exists(envs.dir(id) / "sessions" / std::to_string(child)));
    EXPECT_EQ(envs.live_sessions(id), 0);
    EXPECT_FALSE(std::filesystem::exists(envs.dir(id) / "sessions" / std::to_string(child)))
        << "a stale session file is removed";
}

TEST(Environments, ListEndsWhatACrashLeft) {
    testing::TestDir dir;
    Environments envs(dir.path());
    const std::string id = "fedcba9876543210";
    // Half-started: a directory with no record (the starting factory was killed).
    std::filesystem::create_directories(envs.dir(id) / "fs" / "upper");
    std::ofstream(envs.dir(id) / "fs" / "upper" / "f") << "x";
    EXPECT_TRUE(envs.list().empty());
    EXPECT_FALSE(std::filesystem::exists(envs.dir(id)));
    // Anything that is not an environment id is left alone.
    std::filesystem::create_directories(dir.path() / "envs" / "not-an-id");
    EXPECT_TRUE(envs.list().empty());
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "envs" / "not-an-id"));
}

TEST(Environments, ListSkipsOneThatIsBusy) {
    testing::TestDir dir;
    Environments envs(dir.path());
    const std::string id = "00000000000000aa";
    std::filesystem::create_directories(envs.dir(id));
    {
        auto lock = envs.lock(id); // another factory is starting it
        EXPECT_TRUE(envs.list().empty());
        EXPECT_TRUE(std::filesystem::exists(envs.dir(id))) << "not ended under its starter";
    }
    EXPECT_TRUE(envs.list().empty());
    EXPECT_FALSE(std::filesystem::exists(envs.dir(id)));
}

TEST(ShellHelpers, PasswdGetsTheCallerOnlyWhenMissing) {
    std::string name;
    auto text =
        passwd_with("root:x:0:0:root:/root:/bin/sh\n", 1000, 1000, "dev", "/home/dev", &name);
    EXPECT_EQ(text, "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n");
    EXPECT_EQ(name, "dev");
    // The uid is there under another name (Ubuntu's "ubuntu" = 1000): kept, and its name used.
    text = passwd_with("ubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n", 1000, 1000, "dev",
                       "/home/dev", &name);
    EXPECT_EQ(text, "ubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n");
    EXPECT_EQ(name, "ubuntu");
    // The name is taken by another uid: a generated one.
    text = passwd_with("dev:x:1001:1001::/home/dev:/bin/sh", 1000, 1000, "dev", "/home/dev", &name);
    EXPECT_EQ(name, "user1000");
    EXPECT_EQ(group_with("root:x:0:\n", 1000, "dev"), "root:x:0:\ndev:x:1000:\n");
    EXPECT_EQ(group_with("dev:x:5:\n", 1000, "dev"), "dev:x:5:\ngroup1000:x:1000:\n");
}

TEST(ShellHelpers, EnvironmentAllowList) {
    const char* env[] = {
        "TERM=xterm", "SECRET_TOKEN=x", "LC_ALL=C", "PATH=/evil", "https_proxy=http://p",
        "EXTRA=1",    "NOEQUALS",       "=bad",     nullptr};
    auto out = passthrough_env({"EXTRA"}, const_cast<char**>(env));
    EXPECT_EQ(out, (std::vector<std::string>{"TERM=xterm", "LC_ALL=C", "https_proxy=http://p",
                                             "EXTRA=1"}));
}

TEST(ShellHelpers, HostnameFromImageName) {
    EXPECT_EQ(hostname_for("example.com/team/devbox:latest"), "devbox");
    EXPECT_EQ(hostname_for("localhost:5000/My_Env@sha256:abc"), "my-env");
    EXPECT_EQ(hostname_for("___"), "factory");
    EXPECT_EQ(strip_tag("localhost:5000/a:b"), "localhost:5000/a");
}

} // namespace
} // namespace factory::shell
