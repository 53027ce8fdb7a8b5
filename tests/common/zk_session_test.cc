// ZkSession against a real ZooKeeper server.
#include "common/zk_session.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <future>
#include <memory>
#include <mutex>

#include "tests/support/zk_fixture.h"

namespace zkroll {
namespace {

using testing::Scaled;
using testing::Signal;
using testing::ZooKeeperTest;
using std::chrono::milliseconds;

// Records session events in order.
class EventLog {
 public:
  void Attach(ZkSession* s) {
    s->AddListener([this](const SessionEvent& e) {
      {
        std::lock_guard<std::mutex> l(mu_);
        events_.push_back(e);
      }
      signal_.Notify();
    });
  }
  int Count(SessionEvent::Kind k) {
    std::lock_guard<std::mutex> l(mu_);
    int n = 0;
    for (auto& e : events_) n += e.kind == k;
    return n;
  }
  // kNewSession events for any session other than `id`: the first session's
  // own announcement may reach a listener attached after Connect().
  int CountNewSessionsOtherThan(int64_t id) {
    std::lock_guard<std::mutex> l(mu_);
    int n = 0;
    for (auto& e : events_) {
      n += e.kind == SessionEvent::Kind::kNewSession && e.session_id != id;
    }
    return n;
  }
  bool WaitCount(SessionEvent::Kind k, int n, milliseconds d) {
    return signal_.WaitFor([&] { return Count(k) >= n; }, d);
  }

 private:
  std::mutex mu_;
  std::vector<SessionEvent> events_;
  Signal signal_;
};

template <typename T>
T Await(std::function<void(std::function<void(T)>)> start) {
  auto p = std::make_shared<std::promise<T>>();
  auto f = p->get_future();
  start([p](T v) { p->set_value(std::move(v)); });
  EXPECT_EQ(f.wait_for(Scaled(milliseconds(20000))), std::future_status::ready);
  return f.get();
}

class ZkSessionTest : public ZooKeeperTest {};

TEST_F(ZkSessionTest, EphemeralCreateAndDeleteAsync) {
  auto s = Connect();
  ASSERT_TRUE(s->EnsurePathSync("/t1/dir", OpenAcl()).ok());
  auto created = Await<Result<std::string>>([&](auto done) {
    s->Create("/t1/dir/e", "hello", CreateMode::kEphemeral, OpenAcl(), done);
  });
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(*created, "/t1/dir/e");

  auto got = s->GetSync("/t1/dir/e");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->data, "hello");
  EXPECT_EQ(got->stat.ephemeral_owner, s->session_id());

  auto dup = s->CreateSync("/t1/dir/e", "", CreateMode::kEphemeral, OpenAcl());
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);

  Status del = Await<Status>([&](auto done) { s->Delete("/t1/dir/e", -1, done); });
  EXPECT_TRUE(del.ok()) << del.ToString();
  auto gone = s->ExistsSync("/t1/dir/e");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  EXPECT_EQ(s->DeleteSync("/t1/dir/e").code(), StatusCode::kNotFound);
}

TEST_F(ZkSessionTest, EphemeralsDieWithTheirSession) {
  auto a = Connect();
  ASSERT_TRUE(a->EnsurePathSync("/t2", OpenAcl()).ok());
  ASSERT_TRUE(a->CreateSync("/t2/e", "", CreateMode::kEphemeral, OpenAcl()).ok());
  auto b = Connect();
  a.reset();  // closes the session
  auto gone = b->ExistsSync("/t2/e");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

TEST_F(ZkSessionTest, MultiFailsAsAWhole) {
  auto s = Connect();
  ASSERT_TRUE(s->EnsurePathSync("/t3/guard", OpenAcl()).ok());
  auto guard = s->ExistsSync("/t3/guard");
  ASSERT_TRUE(guard.ok() && guard->has_value());
  int32_t v = (*guard)->version;

  // A stale version check at the end must undo the create before it.
  MultiResult bad = s->MultiSync({
      ZkOp::Create("/t3/a", "x", CreateMode::kEphemeral, OpenAcl()),
      ZkOp::Check("/t3/guard", v + 1),
  });
  EXPECT_FALSE(bad.status.ok());
  EXPECT_EQ(bad.status.code(), StatusCode::kBadVersion);
  EXPECT_EQ(bad.failed_op, 1);
  EXPECT_NE(bad.status.message().find("check /t3/guard"), std::string::npos)
      << bad.status.message();
  auto a = s->ExistsSync("/t3/a");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->has_value()) << "the failed transaction left its create";

  // The same transaction with the right version applies both ops, and a
  // set in a multi bumps the version that later checks compare with.
  MultiResult good = Await<MultiResult>([&](auto done) {
    s->Multi({ZkOp::Check("/t3/guard", v),
              ZkOp::Create("/t3/a", "x", CreateMode::kEphemeral, OpenAcl()),
              ZkOp::SetData("/t3/guard", "", -1)},
             done);
  });
  ASSERT_TRUE(good.status.ok()) << good.status.ToString();
  EXPECT_EQ(good.results[1].created_path, "/t3/a");
  EXPECT_EQ(good.results[2].stat.version, v + 1);
  MultiResult stale = s->MultiSync({ZkOp::Check("/t3/guard", v),
                                    ZkOp::Delete("/t3/a")});
  EXPECT_EQ(stale.status.code(), StatusCode::kBadVersion);
  EXPECT_TRUE(s->ExistsSync("/t3/a")->has_value());
}

TEST_F(ZkSessionTest, WatchFiresOnce) {
  auto s = Connect();
  ASSERT_TRUE(s->EnsurePathSync("/t4", OpenAcl()).ok());

  // A raw one-shot watch fires exactly once.
  //
  // The callbacks run on the session's I/O thread and may still be inside
  // Notify() when the wait below has seen their count and this test body
  // returns: they share the counts and the signal, rather than refer to
  // this frame (ThreadSanitizer caught the signal destroyed under a
  // Notify()).
  struct Seen {
    std::atomic<int> fired{0};
    std::atomic<int> second{0};
    Signal signal;
  };
  auto seen = std::make_shared<Seen>();
  auto r = s->ExistsSync("/t4/x", [seen](const WatchEvent& e) {
    EXPECT_EQ(e.type, WatchEvent::Type::kCreated);
    ++seen->fired;
    seen->signal.Notify();
  });
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(s->CreateSync("/t4/x", "", CreateMode::kPersistent, OpenAcl()).ok());
  ASSERT_TRUE(seen->signal.WaitFor([&] { return seen->fired == 1; },
                                   milliseconds(10000)));
  ASSERT_TRUE(s->DeleteSync("/t4/x").ok());
  // A second change to the node must not reach the spent watch: create and
  // observe through a fresh watch that it did fire, then compare counts.
  ASSERT_TRUE(s->ExistsSync("/t4/x", [seen](const WatchEvent&) {
                 ++seen->second;
                 seen->signal.Notify();
               }).ok());
  ASSERT_TRUE(s->CreateSync("/t4/x", "", CreateMode::kPersistent, OpenAcl()).ok());
  ASSERT_TRUE(seen->signal.WaitFor([&] { return seen->second == 1; },
                                   milliseconds(10000)));
  EXPECT_EQ(seen->fired, 1);
}

TEST_F(ZkSessionTest, ConnectionLossKeepsSessionAndEphemerals) {
  ZkOptions opts;
  opts.session_timeout = milliseconds(20000);
  EventLog log;  // outlives the session, whose listener writes to it
  auto s = Connect(opts);
  log.Attach(s.get());
  ASSERT_TRUE(s->EnsurePathSync("/t5", OpenAcl()).ok());
  ASSERT_TRUE(s->CreateSync("/t5/e", "", CreateMode::kEphemeral, OpenAcl()).ok());
  int64_t id = s->session_id();

  server()->Stop();
  ASSERT_TRUE(log.WaitCount(SessionEvent::Kind::kDisconnected, 1, milliseconds(20000)));
  EXPECT_FALSE(s->connected());
  // Operations during the outage fail as retryable, never as expiry.
  auto during = s->ExistsSync("/t5/e");
  ASSERT_FALSE(during.ok());
  EXPECT_TRUE(during.status().IsRetryable()) << during.status().ToString();

  ASSERT_TRUE(server()->Start().ok());
  ASSERT_TRUE(log.WaitCount(SessionEvent::Kind::kReconnected, 1, milliseconds(30000)));
  EXPECT_EQ(s->session_id(), id);
  EXPECT_EQ(log.Count(SessionEvent::Kind::kExpired), 0);
  EXPECT_EQ(log.CountNewSessionsOtherThan(id), 0);
  auto e = s->GetSync("/t5/e");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->stat.ephemeral_owner, id);
}

TEST_F(ZkSessionTest, ExpiryBuildsNewSessionAndOwnerRecreatesEphemerals) {
  EventLog log;  // outlives the session, whose listener writes to it
  auto s = Connect();
  log.Attach(s.get());
  ASSERT_TRUE(s->EnsurePathSync("/t6", OpenAcl()).ok());
  // The owner's rule: on every new session, re-create our ephemeral.
  std::atomic<int> recreated{0};
  Signal signal;
  s->AddListener([&](const SessionEvent& e) {
    if (e.kind != SessionEvent::Kind::kNewSession) return;
    s->Create("/t6/mine", "v2", CreateMode::kEphemeral, OpenAcl(),
              [&](Result<std::string> r) {
                EXPECT_TRUE(r.ok()) << r.status().ToString();
                ++recreated;
                signal.Notify();
              });
  });
  ASSERT_TRUE(s->CreateSync("/t6/mine", "v1", CreateMode::kEphemeral, OpenAcl()).ok());
  int64_t old_id = s->session_id();

  ASSERT_TRUE(server()->ExpireSession(old_id, s->session_password()).ok());
  ASSERT_TRUE(log.WaitCount(SessionEvent::Kind::kExpired, 1, milliseconds(30000)));
  ASSERT_TRUE(log.WaitCount(SessionEvent::Kind::kNewSession, 1, milliseconds(30000)));
  ASSERT_TRUE(signal.WaitFor([&] { return recreated == 1; }, milliseconds(10000)));
  EXPECT_NE(s->session_id(), old_id);
  auto node = s->GetSync("/t6/mine");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->data, "v2");
  EXPECT_EQ(node->stat.ephemeral_owner, s->session_id());
}

// Calls bound to a session go out through that session or not at all:
// after an expiry and renewal they send nothing (SessionExpired), while the
// same calls bound to the new session work. Sync answers on any path.
TEST_F(ZkSessionTest, CallsBoundToASessionNeverRunInALaterOne) {
  auto s = Connect();
  ASSERT_TRUE(s->EnsurePathSync("/t10", OpenAcl()).ok());
  EXPECT_TRUE(s->SyncSync("/t10").ok());
  EXPECT_TRUE(s->SyncSync("/t10/missing").ok());
  ASSERT_TRUE(s->CreateSync("/t10/a", "", CreateMode::kEphemeral, OpenAcl()).ok());
  const int64_t old_id = s->session_id();
  EXPECT_TRUE(s->DeleteInSessionSync("/t10/a", 0, old_id).ok());
  ASSERT_TRUE(s->CreateSync("/t10/a", "", CreateMode::kEphemeral, OpenAcl()).ok());

  ASSERT_TRUE(server()->ExpireSession(old_id, s->session_password()).ok());
  ASSERT_TRUE(testing::WaitFor([&] { return s->session_id() != old_id && s->connected(); },
                      milliseconds(30000)));
  ASSERT_TRUE(s->CreateSync("/t10/b", "", CreateMode::kPersistent, OpenAcl()).ok());
  EXPECT_EQ(s->DeleteInSessionSync("/t10/b", 0, old_id).code(),
            StatusCode::kSessionExpired);
  MultiResult m = s->MultiInSessionSync({ZkOp::Delete("/t10/b", 0)}, old_id);
  EXPECT_EQ(m.status.code(), StatusCode::kSessionExpired) << m.status.ToString();
  EXPECT_TRUE(s->ExistsSync("/t10/b")->has_value()) << "deleted from a later session";
  EXPECT_TRUE(
      s->MultiInSessionSync({ZkOp::Delete("/t10/b", 0)}, s->session_id()).status.ok());
  EXPECT_FALSE(s->ExistsSync("/t10/b")->has_value());
}

TEST_F(ZkSessionTest, DigestAclRefusesUnauthenticatedWriter) {
  Credential cred{"coordinator", "pw-c"};
  ZkOptions with_auth;
  with_auth.credentials = {cred};
  auto owner = Connect(with_auth);
  AclList acl = {AclEntry{perms::kAll, "digest", DigestId(cred)},
                 AclEntry{perms::kRead, "world", "anyone"}};
  ASSERT_TRUE(owner->CreateSync("/t7", "", CreateMode::kPersistent, acl).ok());
  ASSERT_TRUE(owner->CreateSync("/t7/child", "x", CreateMode::kPersistent, acl).ok());

  auto stranger = Connect();
  auto read = stranger->GetSync("/t7/child");
  ASSERT_TRUE(read.ok()) << "world may read";
  auto set = stranger->SetSync("/t7/child", "evil");
  EXPECT_EQ(set.status().code(), StatusCode::kPermissionDenied);
  auto create = stranger->CreateSync("/t7/other", "", CreateMode::kPersistent, OpenAcl());
  EXPECT_EQ(create.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(stranger->DeleteSync("/t7/child").code(), StatusCode::kPermissionDenied);

  ZkOptions wrong;
  wrong.credentials = {Credential{"coordinator", "guess"}};
  auto impostor = Connect(wrong);
  EXPECT_EQ(impostor->SetSync("/t7/child", "evil").status().code(),
            StatusCode::kPermissionDenied);

  EXPECT_TRUE(owner->SetSync("/t7/child", "ok").ok());
  auto acl_read = owner->GetAclSync("/t7/child");
  ASSERT_TRUE(acl_read.ok());
  ASSERT_EQ(acl_read->size(), 2u);
  EXPECT_EQ((*acl_read)[0].id, DigestId(cred));
}

TEST_F(ZkSessionTest, ChrootScopesEveryPath) {
  auto root = Connect();
  ASSERT_TRUE(root->EnsurePathSync("/zkroll-test-env", OpenAcl()).ok());
  ZkOptions chrooted;
  chrooted.connect_string = connect_string() + "/zkroll-test-env";
  auto s = Connect(chrooted);
  ASSERT_TRUE(s->EnsurePathSync("/services/level", OpenAcl()).ok());
  auto seen = root->ExistsSync("/zkroll-test-env/services/level");
  ASSERT_TRUE(seen.ok());
  EXPECT_TRUE(seen->has_value());
  auto top = root->ExistsSync("/services/level");
  ASSERT_TRUE(top.ok());
  EXPECT_FALSE(top->has_value());
}

TEST_F(ZkSessionTest, ConnectDeadlineNamesTheServers) {
  ZkOptions opts;
  opts.connect_string = "127.0.0.1:" + std::to_string(testing::PickFreePort());
  ZkSession s(io().executor(), opts);
  ASSERT_TRUE(s.Start().ok());
  Status st = s.WaitConnected(milliseconds(1500));
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(st.message().find(opts.connect_string), std::string::npos);
  auto r = s.ExistsSync("/x");
  EXPECT_FALSE(r.ok());
}

TEST_F(ZkSessionTest, BadConnectStringRefusedBeforeAnyCall) {
  ZkOptions opts;
  opts.connect_string = "localhost;rm -rf /";
  ZkSession s(io().executor(), opts);
  Status st = s.Start();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace zkroll
