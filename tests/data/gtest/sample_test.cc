// A GoogleTest binary for tests/test_gtest_driver.py: passes, failures with
// messages, GTEST_SKIP, a disabled test, typed and value-parameterised tests,
// and misbehaviour switched on by environment variables:
//   GT_CRASH=1  Danger.Crashes raises SIGSEGV
//   GT_HANG=1   Danger.Hangs sleeps forever
//   GT_EXIT3=1  the binary exits 3 after running tests (a static destructor;
//               a --gtest_list_tests run exits 0)
//   GT_FAIL=1   Danger.FailsOnDemand fails
//   GT_RUNLOG=F each run of tests logs its shard and begin/end times to F
//   GT_SLEEP=S  each Sleepy test sleeps S seconds (Sleepy.S3 half that)
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <unistd.h>

namespace {

double Now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// With GT_RUNLOG=FILE each run of tests (not a --gtest_list_tests run)
// appends "SHARD_INDEX begin|end EPOCH_SECONDS" lines to FILE.
void Log(const char* what) {
  const char* path = std::getenv("GT_RUNLOG");
  if (path == nullptr) return;
  const char* index = std::getenv("GTEST_SHARD_INDEX");
  FILE* out = std::fopen(path, "a");
  std::fprintf(out, "%s %s %.6f\n", index != nullptr ? index : "-", what, Now());
  std::fclose(out);
}

// Tests ran (not a --gtest_list_tests run): set by a global environment.
bool tests_ran = false;

struct Ran : ::testing::Environment {
  void SetUp() override {
    tests_ran = true;
    Log("begin");
  }
  void TearDown() override { Log("end"); }
};
::testing::Environment* const ran = ::testing::AddGlobalTestEnvironment(new Ran);

struct ExitThree {
  ~ExitThree() {
    if (tests_ran && std::getenv("GT_EXIT3") != nullptr) _exit(3);
  }
} exit_three;

void Sleepy(const char* name) {
  const char* seconds = std::getenv("GT_SLEEP");
  if (seconds == nullptr) return;
  double sleep = std::atof(seconds);
  if (std::string(name) == "S3") sleep /= 2;  // the last shard ends first
  usleep(static_cast<useconds_t>(sleep * 1e6));
}

}  // namespace

#define PASSING(n) \
  TEST(Alpha, Pass##n) { EXPECT_TRUE(true); }
PASSING(00) PASSING(01) PASSING(02) PASSING(03) PASSING(04)
PASSING(05) PASSING(06) PASSING(07) PASSING(08) PASSING(09)

TEST(Alpha, FailsWithMessage) { EXPECT_EQ(2 + 2, 5) << "arithmetic is broken"; }
TEST(Alpha, SkipsItself) { GTEST_SKIP() << "not on this machine"; }
TEST(Alpha, DISABLED_NeverRuns) { FAIL() << "a disabled test ran"; }

TEST(Danger, Before) { SUCCEED(); }
TEST(Danger, Crashes) {
  std::printf("about to crash\n");
  std::fflush(stdout);
  if (std::getenv("GT_CRASH") != nullptr) std::raise(SIGSEGV);
}
TEST(Danger, Hangs) {
  std::printf("about to hang\n");
  std::fflush(stdout);
  while (std::getenv("GT_HANG") != nullptr) usleep(100000);
}
TEST(Danger, FailsOnDemand) { EXPECT_TRUE(std::getenv("GT_FAIL") == nullptr) << "GT_FAIL is set"; }
TEST(Danger, After) { SUCCEED(); }

#define BETA(n) \
  TEST(Beta, Pass##n) { EXPECT_TRUE(true); }
BETA(00) BETA(01) BETA(02) BETA(03) BETA(04)
BETA(05) BETA(06) BETA(07) BETA(08) BETA(09)

TEST(Beta, AlsoFails) { ADD_FAILURE() << "a second failure"; }

#define SLEEPY(n) \
  TEST(Sleepy, S##n) { Sleepy("S" #n); }
SLEEPY(0) SLEEPY(1) SLEEPY(2) SLEEPY(3)

template <typename T>
class Typed : public ::testing::Test {};
using Types = ::testing::Types<int, long>;
TYPED_TEST_SUITE(Typed, Types);
TYPED_TEST(Typed, Zero) { EXPECT_EQ(TypeParam(), 0); }

class Param : public ::testing::TestWithParam<int> {};
TEST_P(Param, Small) { EXPECT_LT(GetParam(), 3) << "param " << GetParam() << " is not small"; }
TEST_P(Param, Positive) { EXPECT_GT(GetParam(), 0); }
INSTANTIATE_TEST_SUITE_P(Inst, Param, ::testing::Values(1, 2, 3));
