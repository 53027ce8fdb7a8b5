// JSON-lines and text output of the coordinator (coordinator/reporter.h).
#include "coordinator/reporter.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "coordinator/abort_signal.h"

namespace zkroll::coordinator {
namespace {

std::string Capture(OutputFormat format,
                    const std::function<void(Reporter&)>& fn) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  {
    Reporter r(format, f, f);
    fn(r);
  }
  std::fclose(f);
  std::string out(buf, len);
  free(buf);
  return out;
}

TEST(ReporterTest, JsonModeWritesOneObjectPerLine) {
  std::string out = Capture(OutputFormat::kJson, [](Reporter& r) {
    r.StepEnded("level@127.0.0.1:9000", "pause", "ok", Millis(3), "flag \"x\"");
    r.Output("level@127.0.0.1:9000", "command", OutputStream::kStderr,
             "line with \x1b[31m colour");
    proto::ResultEvent extra;
    extra.set_deploy_id("d1");
    r.Result("succeeded", 0, "done", extra);
  });
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < out.size()) {
    size_t nl = out.find('\n', start);
    lines.push_back(out.substr(start, nl - start));
    start = nl + 1;
  }
  ASSERT_EQ(lines.size(), 3u) << out;
  for (const auto& l : lines) {
    EXPECT_EQ(l.front(), '{');
    EXPECT_EQ(l.back(), '}');
  }
  EXPECT_NE(lines[0].find("\"event\":\"step\""), std::string::npos);
  EXPECT_NE(lines[0].find("\"duration_ms\":3"), std::string::npos);
  EXPECT_NE(lines[0].find("\"detail\":\"flag \\\"x\\\"\""), std::string::npos);
  EXPECT_NE(lines[1].find("\"stream\":\"stderr\""), std::string::npos);
  EXPECT_NE(lines[1].find("\\u001b[31m"), std::string::npos);
  EXPECT_NE(lines[2].find("\"exit_code\":0"), std::string::npos);
  EXPECT_NE(lines[2].find("\"deploy_id\":\"d1\""), std::string::npos);
}

TEST(ReporterTest, DrainEventCarriesWhyAndWhatWasMissing) {
  std::string json = Capture(OutputFormat::kJson, [](Reporter& r) {
    r.Drain("level@127.0.0.1:9000", "auto", "cap", Millis(20000),
            Millis(20000), "drain ran to the 20 s cap: peer \"x\"",
            {"1 peer belongs to no registered caller", "quote \" and \\"});
  });
  const size_t at = json.find("\"time\":\"") + 8;
  ASSERT_NE(at, std::string::npos + 8) << json;
  EXPECT_EQ(json,
            "{\"schema\":1,\"event\":\"drain\",\"time\":\"" +
                json.substr(at, 24) +
                "\",\"instance\":\"level@127.0.0.1:9000\",\"mode\":\"auto\","
                "\"ended\":\"cap\",\"duration_ms\":20000,\"cap_ms\":20000,"
                "\"reason\":\"drain ran to the 20 s cap: peer \\\"x\\\"\","
                "\"missing\":[\"1 peer belongs to no registered caller\","
                "\"quote \\\" and \\\\\"]}\n");
  // Text mode: the drain step's own line carries the reason.
  std::string text = Capture(OutputFormat::kText, [](Reporter& r) {
    r.Drain("level@127.0.0.1:9000", "auto", "evidence", Millis(610),
            Millis(20000), "drained", {});
  });
  EXPECT_EQ(text, "");
}

TEST(ReporterTest, TextModePrefixesCommandOutput) {
  std::string out = Capture(OutputFormat::kText, [](Reporter& r) {
    r.Output("level@10.0.0.1:9000", "command", OutputStream::kStdout, "hello");
    r.Output("level@10.0.0.1:9000", "on-failure", OutputStream::kStdout, "rb");
    r.StepEnded("level@10.0.0.1:9000", "drain", "ok", Millis(20000), "");
  });
  EXPECT_NE(out.find("[level@10.0.0.1:9000] hello\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("[level@10.0.0.1:9000 on-failure] rb\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("drain"), std::string::npos);
  EXPECT_NE(out.find("20s"), std::string::npos) << out;
}

TEST(AbortSignalTest, WaitUntilReturnsOnConditionStopOrDeadline) {
  AbortSignal abort;
  auto now = std::chrono::steady_clock::now;
  EXPECT_EQ(abort.WaitUntil([] { return true; }, now()),
            AbortSignal::WaitResult::kReady);
  EXPECT_EQ(abort.WaitUntil([] { return false; }, now() + Millis(20)),
            AbortSignal::WaitResult::kTimedOut);
  EXPECT_TRUE(abort.SleepFor(Millis(1)));
  abort.Request(SIGINT);
  abort.Request(SIGTERM);
  EXPECT_EQ(abort.signo(), SIGINT) << "the first signal is kept";
  EXPECT_EQ(abort.WaitUntil([] { return false; }, now() + Millis(60000)),
            AbortSignal::WaitResult::kAborted);
  EXPECT_FALSE(abort.SleepFor(Millis(60000)));
}

}  // namespace
}  // namespace zkroll::coordinator
