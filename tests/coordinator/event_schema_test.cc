// The typed JSON events of `zkroll --output json` (coordinator/reporter.h,
// proto/zkroll.proto): every event type, as the Reporter prints it, passes
// the documented schema (event_check.h): numbers are JSON numbers, enums
// hold documented values, every field is there, "schema" is 1.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>

#include "coordinator/reporter.h"
#include "tests/coordinator/event_check.h"

namespace zkroll::coordinator {
namespace {

using zkroll::testing::CheckEventLine;
using zkroll::testing::CheckEventLines;
using zkroll::testing::EventDescriptor;

std::string Capture(const std::function<void(Reporter&)>& fn) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  {
    Reporter r(OutputFormat::kJson, f, f);
    fn(r);
  }
  std::fclose(f);
  std::string out(buf, len);
  free(buf);
  return out;
}

// No event message (or message inside one) has a 64-bit integer field:
// protobuf's JSON mapping would print it as a string.
void ExpectNo64BitFields(const google::protobuf::Descriptor* d) {
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    EXPECT_NE(f->cpp_type(), google::protobuf::FieldDescriptor::CPPTYPE_INT64)
        << d->full_name() << "." << f->name();
    EXPECT_NE(f->cpp_type(), google::protobuf::FieldDescriptor::CPPTYPE_UINT64)
        << d->full_name() << "." << f->name();
    EXPECT_NE(f->cpp_type(), google::protobuf::FieldDescriptor::CPPTYPE_ENUM)
        << d->full_name() << "." << f->name();
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      ExpectNo64BitFields(f->message_type());
    }
  }
}

TEST(EventSchemaTest, NoEventFieldPrintsANumberAsAString) {
  for (const char* e : {"step", "drain", "output", "notice", "batch", "result",
                        "instance", "deploy", "plan", "journal"}) {
    const auto* d = EventDescriptor(e);
    ASSERT_NE(d, nullptr) << e;
    ASSERT_NE(d->FindFieldByName("schema"), nullptr) << e;
    ASSERT_NE(d->FindFieldByName("event"), nullptr) << e;
    ExpectNo64BitFields(d);
  }
}

TEST(EventSchemaTest, EveryReporterEventIsTypedAndDocumented) {
  std::string out = Capture([](Reporter& r) {
    const std::string i = "level@127.0.0.1:9000";
    r.StepStarted(i, "pause", "", true);
    r.StepEnded(i, "pause", "ok", Millis(3), "flag");
    r.StepEnded(i, "command", "failed", Millis(1200), "exit status 3");
    r.Drain(i, "auto", "evidence", Millis(610), Millis(20000), "drained",
            {"x"});
    r.Output(i, "command", OutputStream::kStdout,
             "bytes \xff\xfe are not UTF-8");
    r.Output(i, "on-failure", OutputStream::kStderr, "");
    r.Notice("lock taken");
    r.Batch(1, 2, {i});
    proto::ResultEvent counts;
    counts.set_deploy_id("d1");
    counts.set_succeeded(2);
    counts.set_failed(1);
    counts.set_aborted(0);
    counts.set_not_started(3);
    r.Result("failed", 1, "rollout failed", counts);
    r.Result("error", 3, "cannot reach ZooKeeper");

    proto::StatusEvent s;
    Stamp(&s, "instance");
    s.set_service("level");
    s.set_instance("127.0.0.1:9000");
    s.set_paused(true);
    s.mutable_pause()->set_pid(42);
    auto* a = s.add_agents();
    a->set_host("h\xc3");  // invalid UTF-8 inside a nested message
    a->set_state("registered");
    s.mutable_last_deploy()->set_kind("rollout");
    s.mutable_last_deploy()->set_outcome("unfinished");
    s.mutable_forwarding()->set_source("committed");
    r.Emit(s);
    proto::HistoryEvent h;
    Stamp(&h, "deploy");
    h.set_kind("deploy");
    h.set_outcome("succeeded");
    h.set_pid(7);
    h.set_instances(1);
    r.Emit(h);
    proto::PlanEvent p;
    Stamp(&p, "plan");
    p.set_kind("rollout");
    p.mutable_lock()->set_held(false);
    auto* b = p.add_batches();
    b->set_batch(1);
    b->add_instances()->set_instance(i);
    r.Emit(p);
    proto::JournalEvent j;
    Stamp(&j, "journal");
    j.set_kind("rollout");
    j.set_outcome("failed");
    j.set_pid(9);
    j.add_command("/bin/true");
    (*j.mutable_parameters())["batch"] = "2";
    auto* inst = j.add_instances();
    inst->set_instance("127.0.0.1_9000");
    inst->set_outcome("failed");
    auto* step = inst->add_steps();
    step->set_name("command");
    step->set_verdict("failed");
    r.Emit(j);
  });
  std::map<std::string, int> seen;
  auto problems = CheckEventLines(out, &seen);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  for (const char* e : {"step", "drain", "output", "notice", "batch", "result",
                        "instance", "deploy", "plan", "journal"}) {
    EXPECT_GT(seen[e], 0) << "no " << e << " event in\n" << out;
  }
  EXPECT_NE(out.find("\"duration_ms\":1200"), std::string::npos) << out;
  EXPECT_NE(out.find("\"succeeded\":2,\"failed\":1,\"aborted\":0,"
                     "\"not_started\":3"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("bytes \xEF\xBF\xBD\xEF\xBF\xBD are not UTF-8"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\"host\":\"h\xEF\xBF\xBD\""), std::string::npos) << out;
}

// The checker itself catches what it is there to catch.
TEST(EventSchemaTest, CheckerRefusesStringNumbersAndUndocumentedValues) {
  std::string good = Capture([](Reporter& r) {
    r.StepEnded("l@127.0.0.1:1", "pause", "ok", Millis(3), "");
  });
  good.pop_back();  // the newline
  EXPECT_TRUE(CheckEventLine(good).empty()) << good;
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  EXPECT_FALSE(
      CheckEventLine(replace("\"duration_ms\":3", "\"duration_ms\":\"3\""))
          .empty());
  EXPECT_FALSE(
      CheckEventLine(replace("\"verdict\":\"ok\"", "\"verdict\":\"fine\""))
          .empty());
  EXPECT_FALSE(CheckEventLine(replace("\"schema\":1", "\"schema\":2")).empty());
  EXPECT_FALSE(
      CheckEventLine(replace(",\"detail\":\"\"", ",\"extra\":1")).empty());
  EXPECT_FALSE(
      CheckEventLine(replace("\"event\":\"step\"", "\"event\":\"stepped\""))
          .empty());
}

}  // namespace
}  // namespace zkroll::coordinator
