// Containers for real (as root, with crun and/or runc installed): a busybox root file system as
// one lower directory, an overlay with a fresh upper, run_container, diff_upper. Each test runs
// with every runtime this machine has.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "factory/runtime/bundle.hpp"
#include "factory/runtime/changeset.hpp"
#include "factory/runtime/rootfs.hpp"
#include "factory/runtime/runtime.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

// RunSpec literals name only the fields a test sets.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace fs = std::filesystem;
using namespace factory;
using namespace factory::runtime;

namespace {

const char* busybox = "/usr/bin/busybox";

// bin/busybox and the applets the tests use, as symlinks: the "image".
void make_busybox_root(const fs::path& dir) {
    fs::create_directories(dir / "bin");
    fs::copy_file(busybox, dir / "bin/busybox");
    for (const char* applet : {"sh", "true", "echo", "cat", "id", "pwd", "env", "ls", "sleep", "rm",
                               "touch", "mkdir", "hostname", "chmod", "ln"})
        fs::create_symlink("busybox", dir / "bin" / applet);
    fs::create_directories(dir / "etc");
    std::ofstream(dir / "etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n";
    fs::create_directories(dir / "tmp");
    fs::permissions(dir / "tmp", fs::perms::all | fs::perms::sticky_bit);
}

// Every path below dir with its type, mode, owner, size, mtime and content digest.
std::map<std::string, std::string> fingerprint(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (fs::recursive_directory_iterator it(dir), end; it != end; ++it) {
        struct stat st {};
        ::lstat(it->path().c_str(), &st);
        std::ostringstream s;
        s << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid << " "
          << st.st_size << " " << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec << " "
          << st.st_ctim.tv_sec << "." << st.st_ctim.tv_nsec;
        if (S_ISREG(st.st_mode)) s << " " << sha256_file(it->path().string()).value_or("?");
        out[fs::relative(it->path(), dir).string()] = s.str();
    }
    return out;
}

std::vector<std::string> containers_of_this_process(const RuntimeChoice& rt) {
    std::vector<std::string> out;
    std::error_code ec;
    std::string prefix = "factory-" + std::to_string(::getpid()) + "-";
    for (fs::directory_iterator it(rt.state_root, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().starts_with(prefix))
            out.push_back(it->path().filename());
    return out;
}

class ContainerTest : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        if (!factory::testing::privileged()) GTEST_SKIP() << "needs root";
        if (!fs::exists(busybox)) GTEST_SKIP() << "needs " << busybox << " (busybox-static)";
        auto rt = choose_runtime(GetParam());
        if (!rt) GTEST_SKIP() << rt.error();
        runtime_ = *rt;
        image_ = dir_ / "image";
        make_busybox_root(image_);
    }

    // A rootfs over the image for spec (its mount targets), then the run.
    Result<int> run(RunSpec spec, std::vector<std::string>* lines = nullptr,
                    const RunControl& control = {}) {
        auto fs = Rootfs::create(dir_ / ("scratch" + std::to_string(runs_++)), {image_},
                                 mount_targets(spec));
        if (!fs) return Unexpected(fs.error());
        spec.rootfs = fs->merged();
        auto status = run_container(
            spec, runtime_,
            [&](std::string_view line) {
                if (lines) lines->emplace_back(line);
            },
            control);
        stubs_ = fs->stub_paths();
        upper_ = fs->upper();
        return status;
    }

    Result<std::vector<layer::Entry>> changes() {
        NormalizeOptions o;
        o.mount_stubs = stubs_;
        return diff_upper(upper_, o);
    }

    factory::testing::TestDir dir_;
    RuntimeChoice runtime_;
    fs::path image_, upper_;
    std::vector<std::string> stubs_;
    int runs_ = 0;
};

TEST_P(ContainerTest, EchoesAndLeavesNoTrace) {
    auto before = fingerprint(image_);
    std::vector<std::string> lines;
    auto status = run({.args = {"/bin/busybox", "echo", "hi"}}, &lines);
    ASSERT_TRUE(status) << status.error();
    EXPECT_EQ(*status, 0);
    EXPECT_EQ(lines, std::vector<std::string>{"hi"});
    auto entries = changes();
    ASSERT_TRUE(entries) << entries.error();
    std::string paths;
    for (const auto& e : *entries)
        paths += e.path + " ";
    EXPECT_TRUE(entries->empty()) << "a run that changes nothing makes an empty layer, not: "
                                  << paths;
    EXPECT_EQ(fingerprint(image_), before) << "the lower directory was written to";
    EXPECT_TRUE(containers_of_this_process(runtime_).empty()) << "container not deleted";
}

TEST_P(ContainerTest, ExitCodesPropagate) {
    auto status = run({.args = {"/bin/sh", "-c", "exit 3"}});
    ASSERT_TRUE(status) << status.error();
    EXPECT_EQ(*status, 3);
    // A child killed by a signal: the shell (pid 1, immune to signals it doesn't handle)
    // reports 128 + N.
    status = run({.args = {"/bin/sh", "-c", "sh -c 'kill -TERM $$'; exit $?"}});
    ASSERT_TRUE(status) << status.error();
    EXPECT_EQ(*status, 128 + SIGTERM);
}

TEST_P(ContainerTest, EnvCwdUserAndHostname) {
    std::vector<std::string> lines;
    auto status =
        run({.args = {"/bin/sh", "-c", "echo $FOO; pwd; id -u; id -g; id -G; hostname; echo $PATH"},
             .env = {"FOO=bar baz"},
             .cwd = "/work/dir",
             .uid = 1000,
             .gid = 1001,
             .extra_gids = {2000},
             .hostname = "builder"},
            &lines);
    ASSERT_TRUE(status) << status.error();
    EXPECT_EQ(*status, 0);
    ASSERT_EQ(lines.size(), 7u);
    EXPECT_EQ(lines[0], "bar baz");
    EXPECT_EQ(lines[1], "/work/dir");
    EXPECT_EQ(lines[2], "1000");
    EXPECT_EQ(lines[3], "1001");
    EXPECT_NE(lines[4].find("2000"), std::string::npos) << lines[4];
    EXPECT_EQ(lines[5], "builder");
    EXPECT_EQ(lines[6], "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
}

TEST_P(ContainerTest, NetworkOffHasOnlyLoopback) {
    std::vector<std::string> lines;
    auto status = run({.args = {"/bin/ls", "/sys/class/net"}, .network = false}, &lines);
    ASSERT_TRUE(status) << status.error();
    EXPECT_EQ(lines, std::vector<std::string>{"lo"});

    lines.clear();
    status = run({.args = {"/bin/ls", "/sys/class/net"}, .network = true}, &lines);
    ASSERT_TRUE(status) << status.error();
    EXPECT_GT(lines.size(), 1u) << "the host's interfaces are visible with network = true";

    lines.clear();
    status = run({.args = {"/bin/cat", "/etc/hosts"}, .network = false}, &lines);
    ASSERT_TRUE(status) << status.error();
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines[0], "127.0.0.1\tlocalhost");
}

TEST_P(ContainerTest, ChangesLandInTheUpperDirAndTheLayer) {
    auto before = fingerprint(image_);
    std::vector<std::string> lines;
    auto status = run(
        {.args = {"/bin/sh", "-c",
                  "echo data > /newfile && mkdir -p /opt/tool && "
                  "echo x > /opt/tool/a && ln /opt/tool/a /opt/tool/b && "
                  "rm /bin/ls && chmod 700 /etc && chown 1000:1000 /newfile && "
                  "echo log > /tmp/scratch && mkdir -p /var/log && echo l > /var/log/dpkg.log"}},
        &lines);
    ASSERT_TRUE(status) << status.error();
    ASSERT_EQ(*status, 0) << (lines.empty() ? "" : lines[0]);
    EXPECT_EQ(fingerprint(image_), before) << "nothing is written to the lower directory";

    auto entries = changes();
    ASSERT_TRUE(entries) << entries.error();
    std::map<std::string, layer::Entry> by_path;
    for (auto& e : *entries)
        by_path[e.path] = e;
    ASSERT_TRUE(by_path.contains("newfile"));
    EXPECT_EQ(by_path["newfile"].size, 5u);
    EXPECT_EQ(by_path["newfile"].uid, 1000u);
    EXPECT_EQ(by_path["newfile"].source, (upper_ / "newfile").string());
    ASSERT_TRUE(by_path.contains("bin/.wh.ls")) << "the deletion is a whiteout";
    EXPECT_EQ(by_path["bin/.wh.ls"].mode, 0644u);
    EXPECT_EQ(by_path["bin/.wh.ls"].size, 0u);
    EXPECT_EQ(by_path["etc"].mode, 0700u);
    EXPECT_EQ(by_path["opt/tool/a"].type, layer::Entry::Type::file);
    EXPECT_EQ(by_path["opt/tool/b"].type, layer::Entry::Type::hardlink);
    EXPECT_EQ(by_path["opt/tool/b"].link, "opt/tool/a");
    EXPECT_FALSE(by_path.contains("tmp/scratch")) << "/tmp is scratch";
    EXPECT_FALSE(by_path.contains("var/log/dpkg.log")) << "package-manager logs are noise";
    EXPECT_FALSE(by_path.contains("etc/hosts"));
    EXPECT_FALSE(by_path.contains("etc/resolv.conf"));
}

TEST_P(ContainerTest, MissingProgramIsARuntimeError) {
    auto status = run({.args = {"/no/such/program"}});
    ASSERT_FALSE(status) << "exit code " << *status;
    EXPECT_NE(status.error().find(runtime_.name()), std::string::npos) << status.error();
    EXPECT_TRUE(containers_of_this_process(runtime_).empty());
}

TEST_P(ContainerTest, CancelKillsAndDeletes) {
    std::atomic<bool> cancel{false};
    std::thread t([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        cancel = true;
    });
    auto start = std::chrono::steady_clock::now();
    auto status = run({.args = {"/bin/sleep", "30"}}, nullptr, RunControl{.cancel = &cancel});
    t.join();
    ASSERT_TRUE(status) << status.error();
    EXPECT_EQ(*status, 128 + SIGKILL);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    EXPECT_TRUE(containers_of_this_process(runtime_).empty());
}

TEST_P(ContainerTest, BindMountsAndGeneratedFiles) {
    auto shared = dir_ / "shared";
    fs::create_directories(shared);
    std::vector<std::string> lines;
    auto status = run({.args = {"/bin/sh", "-c", "cat /run/secrets/token; echo out > /cache/f"},
                       .mounts = {{.destination = "/cache", .source = shared.string()}},
                       .files = {{"/run/secrets/token", "s3cret"}}},
                      &lines);
    ASSERT_TRUE(status) << status.error();
    EXPECT_EQ(lines, std::vector<std::string>{"s3cret"});
    std::ifstream in(shared / "f");
    std::string got;
    std::getline(in, got);
    EXPECT_EQ(got, "out");
    auto entries = changes();
    ASSERT_TRUE(entries) << entries.error();
    for (const auto& e : *entries)
        ADD_FAILURE() << "unexpected entry " << e.path;
}

// Not a test of correctness: prints the cost of a trivial run (bundle + run + delete) so that
// `runtime_container_test --gtest_filter='*Timing*'` measures it.
TEST_P(ContainerTest, TimingOfATrivialRun) {
    auto fs = Rootfs::create(dir_ / "timing", {image_}, mount_targets(RunSpec{}));
    ASSERT_TRUE(fs) << fs.error();
    RunSpec spec{.rootfs = fs->merged(), .args = {"/bin/true"}};
    ASSERT_TRUE(run_container(spec, runtime_, {})); // warm-up
    constexpr int n = 20;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
        auto s = run_container(spec, runtime_, [](std::string_view) {});
        ASSERT_TRUE(s) << s.error();
        ASSERT_EQ(*s, 0);
    }
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count() /
              n;
    std::printf("  %s: %.1f ms per `true` (bundle + run + delete), mean of %d\n",
                runtime_.description().c_str(), ms, n);
    EXPECT_LT(ms, 1000.0);
}

INSTANTIATE_TEST_SUITE_P(Runtimes, ContainerTest, ::testing::Values("crun", "runc"),
                         [](const auto& info) { return info.param; });

TEST(RuntimeChoice, DefaultAndExplicit) {
    auto bogus = choose_runtime("docker");
    ASSERT_FALSE(bogus);
    EXPECT_NE(bogus.error().find("unknown runtime \"docker\""), std::string::npos) << bogus.error();
    auto missing = choose_runtime("/nonexistent/crun");
    ASSERT_FALSE(missing);
    auto def = choose_runtime();
    if (!def) GTEST_SKIP() << def.error();
    EXPECT_FALSE(def->version.empty());
    EXPECT_NE(def->description().find(def->binary.string()), std::string::npos);
    if (def->kind == RuntimeKind::crun && cgroup_hybrid_with_controllers()) {
        EXPECT_EQ(def->hide_mounts, std::vector<std::string>{"/sys/fs/cgroup/unified"});
    }
    ::setenv("FACTORY_RUNTIME", "runc", 1);
    auto env = choose_runtime();
    ::unsetenv("FACTORY_RUNTIME");
    if (env) {
        EXPECT_EQ(env->kind, RuntimeKind::runc);
        EXPECT_EQ(env->why, "FACTORY_RUNTIME=runc");
    }
}

TEST(Bundle, ConfigFollowsTheSpec) {
    RunSpec spec{.rootfs = "/r", .args = {"/bin/sh"}, .uid = 1000, .network = false};
    auto json = make_config(spec, "/b");
    EXPECT_NE(json.find("\"type\": \"network\""), std::string::npos);
    EXPECT_EQ(json.find("resolv.conf"), std::string::npos);
    EXPECT_NE(json.find("\"noNewPrivileges\": true"), std::string::npos);
    EXPECT_NE(json.find("\"effective\": []"), std::string::npos)
        << "no effective caps for uid 1000";
    EXPECT_EQ(json, make_config(spec, "/b")) << "deterministic";
    spec.network = true;
    json = make_config(spec, "/b");
    EXPECT_EQ(json.find("\"type\": \"network\""), std::string::npos);
    EXPECT_NE(json.find("\"/b/resolv.conf\""), std::string::npos);
    spec.cwd = "relative";
    EXPECT_FALSE(check_spec(spec));
    spec.cwd = "/a/../b";
    EXPECT_FALSE(check_spec(spec));
    spec.cwd = "/";
    spec.mounts = {{.destination = "/x/../../etc", .source = "/tmp"}};
    EXPECT_FALSE(check_spec(spec));
}

// Rootless (runc in a user namespace): no cgroup mount, and /sys bound from the host while the
// host's network namespace is shared (sysfs belongs to the network namespace's owner).
TEST(Bundle, UserNamespaceLeavesOutHostOnlyMounts) {
    nlohmann::json c;
    auto mount_of = [&](const std::string& dest) {
        for (const auto& m : c["mounts"])
            if (m["destination"] == dest) return m;
        return nlohmann::json();
    };
    RunSpec spec{.rootfs = "/r", .args = {"/bin/sh"}, .network = true};
    c = nlohmann::json::parse(make_config(spec, "/b"));
    EXPECT_EQ(mount_of("/sys")["type"], "sysfs");
    EXPECT_EQ(mount_of("/sys/fs/cgroup")["type"], "cgroup") << "as root: unchanged";

    c = nlohmann::json::parse(make_config(spec, "/b", {.user_namespace = true}));
    EXPECT_EQ(mount_of("/sys")["type"], "none");
    EXPECT_EQ(mount_of("/sys")["source"], "/sys");
    EXPECT_EQ(mount_of("/sys")["options"],
              nlohmann::json({"rbind", "nosuid", "noexec", "nodev", "ro"}));
    EXPECT_TRUE(mount_of("/sys/fs/cgroup").is_null());

    spec.network = false;
    c = nlohmann::json::parse(make_config(spec, "/b", {.user_namespace = true}));
    EXPECT_EQ(mount_of("/sys")["type"], "sysfs") << "a network namespace of its own";
    EXPECT_TRUE(mount_of("/sys/fs/cgroup").is_null());
}

} // namespace
