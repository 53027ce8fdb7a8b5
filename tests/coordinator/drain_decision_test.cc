// DecideDrain (coordinator/drain_decision.h): fixed cases for each rule and
// its text, and a randomized comparison over generated timelines of caller
// acknowledgements and traffic reports against the fixed wait (a reference
// that only ends at the cap).
#include "coordinator/drain_decision.h"

#include <gtest/gtest.h>

#include <random>

namespace zkroll::coordinator {
namespace {

constexpr int64_t kPausePzxid = 1000;

proto::CallerRecord Caller(const std::string& host, int64_t pid, int64_t pzxid,
                           const std::string& ip = "127.0.0.1",
                           const std::string& mode = "watch") {
  proto::CallerRecord r;
  r.set_host(host);
  r.set_pid(pid);
  r.add_ips(ip);
  r.set_mode(mode);
  r.set_refresh_interval_ms(1000);
  r.set_list_pzxid(pzxid);
  return r;
}

TrafficObservation Report(uint64_t quiet_ms, bool after_pause = true) {
  TrafficObservation t;
  t.report.set_deploy_id("d1");
  t.report.set_source("sock_diag");
  t.report.set_hostname("h1");
  t.report.set_pids_known(true);
  t.report.set_quiet_ms(quiet_ms);
  t.written_after_pause = after_pause;
  return t;
}

void AddPeer(TrafficObservation* t, const std::string& ip, int64_t pid,
             uint32_t open = 0) {
  auto* p = t->report.add_peers();
  p->set_ip(ip);
  p->set_pid(pid);
  p->set_connections(open);
  p->set_connections_total(3);
  p->set_bytes_received(2048);
  p->set_idle_ms(40);
}

DrainInputs Base() {
  DrainInputs in;
  in.deploy_id = "d1";
  in.pause_pzxid = kPausePzxid;
  return in;
}

TEST(DrainDecisionTest, EndsWhenEveryCallerAcknowledgedAndTrafficIsQuiet) {
  DrainConfig cfg;
  DrainInputs in = Base();
  for (int i = 0; i < 12; ++i) {
    std::string id = "h1-" + std::to_string(100 + i) + "-1";
    in.callers_at_pause.insert(id);
    CallerObservation obs{Caller("h1", 100 + i, kPausePzxid), Millis(5 + i)};
    in.callers[id] = obs;
  }
  in.traffic = Report(500);
  AddPeer(&*in.traffic, "127.0.0.1", 105);
  in.now = Millis(610);
  DrainDecision d = DecideDrain(cfg, in);
  EXPECT_TRUE(d.done);
  EXPECT_FALSE(d.at_cap);
  EXPECT_TRUE(d.missing.empty());
  EXPECT_EQ(d.reason,
            "drained in 0.61 s of 20 s: 12/12 callers acknowledged (last "
            "16ms), no traffic for 500ms");
}

TEST(DrainDecisionTest, WaitsForACallerServingAnOlderList) {
  DrainConfig cfg;
  DrainInputs in = Base();
  in.callers_at_pause = {"h1-1-1", "h1-2-1"};
  in.callers["h1-1-1"] = {Caller("h1", 1, kPausePzxid), Millis(3)};
  in.callers["h1-2-1"] = {Caller("h1", 2, kPausePzxid - 1, "127.0.0.1", "poll"),
                          std::nullopt};
  in.traffic = Report(900);
  in.now = Millis(700);
  DrainDecision d = DecideDrain(cfg, in);
  EXPECT_FALSE(d.done);
  ASSERT_EQ(d.missing.size(), 1u);
  EXPECT_NE(d.missing[0].find("h1-2-1 (poll 1s, pid 2)"), std::string::npos)
      << d.missing[0];
  EXPECT_EQ(d.next_wake, cfg.cap);
  in.now = cfg.cap;
  d = DecideDrain(cfg, in);
  EXPECT_TRUE(d.done);
  EXPECT_TRUE(d.at_cap);
  EXPECT_EQ(d.reason.rfind("drain ran to the 20 s cap: 1 caller has not "
                           "acknowledged",
                           0),
            0u)
      << d.reason;
}

TEST(DrainDecisionTest, AVanishedCallerCountsAsGoneANewOneMustAcknowledge) {
  DrainConfig cfg;
  DrainInputs in = Base();
  in.callers_at_pause = {"h1-1-1"};
  in.traffic = Report(600);
  in.now = Millis(100);
  DrainDecision d = DecideDrain(cfg, in);
  EXPECT_TRUE(d.done) << d.reason;
  EXPECT_NE(d.reason.find("0/0 callers acknowledged, 1 gone"),
            std::string::npos)
      << d.reason;
  in.callers["h1-9-1"] = {Caller("h1", 9, kPausePzxid - 5), std::nullopt};
  d = DecideDrain(cfg, in);
  EXPECT_FALSE(d.done);
}

TEST(DrainDecisionTest, UnreadableCallerHoldsTheDrain) {
  DrainConfig cfg;
  DrainInputs in = Base();
  in.bad_callers["junk"] = "payload larger than 65536 bytes";
  in.traffic = Report(600);
  DrainDecision d = DecideDrain(cfg, in);
  EXPECT_FALSE(d.done);
  EXPECT_NE(d.reason.find("junk (no valid record: payload larger"),
            std::string::npos)
      << d.reason;
}

TEST(DrainDecisionTest, TrafficMustBeQuietInAReportWrittenAfterThePause) {
  DrainConfig cfg;
  DrainInputs in = Base();
  in.traffic = Report(5000, /*after_pause=*/false);
  EXPECT_FALSE(DecideDrain(cfg, in).done);
  in.traffic = Report(499);
  DrainDecision d = DecideDrain(cfg, in);
  EXPECT_FALSE(d.done);
  EXPECT_NE(d.reason.find("traffic not quiet for 500ms"), std::string::npos);
  in.traffic = Report(500);
  EXPECT_TRUE(DecideDrain(cfg, in).done);
}

TEST(DrainDecisionTest, UnobservableTrafficRunsToTheCapAndSaysWhy) {
  DrainConfig cfg;
  cfg.cap = Millis(3000);
  DrainInputs in = Base();
  in.now = Millis(2999);
  DrainDecision d = DecideDrain(cfg, in);
  EXPECT_FALSE(d.done);
  in.now = Millis(3000);
  d = DecideDrain(cfg, in);
  EXPECT_TRUE(d.done);
  EXPECT_TRUE(d.at_cap);
  EXPECT_NE(d.reason.find("traffic not observed: no report"),
            std::string::npos);

  in.traffic = Report(900);
  in.traffic->report.set_source("none");
  in.traffic->report.set_error("sock_diag refused: permission denied");
  d = DecideDrain(cfg, in);
  EXPECT_NE(d.reason.find("no source (sock_diag refused: permission denied)"),
            std::string::npos)
      << d.reason;

  in.traffic = Report(900);
  in.traffic->report.set_source("forwarder");
  d = DecideDrain(cfg, in);
  EXPECT_NE(d.reason.find("traffic observed without peers (source forwarder)"),
            std::string::npos)
      << d.reason;
  in.traffic->report.set_source("sock_diag+forwarder");
  in.now = Millis(10);
  EXPECT_TRUE(DecideDrain(cfg, in).done);
  in.now = Millis(3000);

  in.traffic = Report(900);
  in.traffic->report.set_deploy_id("other");
  in.now = Millis(10);
  d = DecideDrain(cfg, in);
  EXPECT_FALSE(d.done);
  EXPECT_NE(d.reason.find("for deploy other"), std::string::npos);
}

TEST(DrainDecisionTest, PeersAreMatchedByPidLocallyAndByAddressRemotely) {
  DrainConfig cfg;
  DrainInputs in = Base();
  in.callers["h1-7-1"] = {Caller("h1", 7, kPausePzxid), Millis(1)};
  in.callers["h2-8-1"] = {Caller("h2", 8, kPausePzxid, "10.0.0.2"), Millis(1)};
  in.traffic = Report(800);
  AddPeer(&*in.traffic, "127.0.0.1", 7);
  AddPeer(&*in.traffic, "10.0.0.2", 0);
  EXPECT_TRUE(DecideDrain(cfg, in).done);

  // Another local process, with a pid: unknown, named with its pid.
  AddPeer(&*in.traffic, "127.0.0.1", 4242, 2);
  DrainDecision d = DecideDrain(cfg, in);
  EXPECT_FALSE(d.done);
  EXPECT_NE(d.reason.find("127.0.0.1 pid 4242: 2 connections open, 3 since "
                          "observation began, 2.0 KiB received"),
            std::string::npos)
      << d.reason;

  // A loopback peer without a pid cannot be told apart by its address.
  in.traffic = Report(800);
  in.traffic->report.set_pids_known(false);
  AddPeer(&*in.traffic, "127.0.0.1", 0);
  d = DecideDrain(cfg, in);
  EXPECT_FALSE(d.done);
  EXPECT_NE(d.reason.find("cannot map sockets to processes"),
            std::string::npos);

  // A remote address no caller has.
  in.traffic = Report(800);
  AddPeer(&*in.traffic, "10.0.0.3", 0);
  EXPECT_FALSE(DecideDrain(cfg, in).done);

  // A truncated peer list cannot prove that every peer is known.
  in.traffic = Report(800);
  in.traffic->report.set_peers_truncated(true);
  EXPECT_FALSE(DecideDrain(cfg, in).done);
}

TEST(DrainDecisionTest, ADepartedCallerIsStillRecognisedAmongPeers) {
  DrainConfig cfg;
  DrainInputs in = Base();
  in.callers_at_pause = {"h1-7-1"};
  in.departed["h1-7-1"] = Caller("h1", 7, kPausePzxid - 3);
  in.traffic = Report(800);
  AddPeer(&*in.traffic, "127.0.0.1", 7);
  EXPECT_TRUE(DecideDrain(cfg, in).done);
}

TEST(DrainDecisionTest, DrainMinIsAFloor) {
  DrainConfig cfg;
  cfg.min = Millis(2000);
  DrainInputs in = Base();
  in.traffic = Report(800);
  in.now = Millis(1999);
  DrainDecision d = DecideDrain(cfg, in);
  EXPECT_FALSE(d.done);
  EXPECT_EQ(d.next_wake, Millis(2000));
  in.now = Millis(2000);
  d = DecideDrain(cfg, in);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.next_wake, cfg.cap);
}

TEST(DrainDecisionTest, FormatSeconds) {
  EXPECT_EQ(FormatSeconds(Millis(610)), "0.61 s");
  EXPECT_EQ(FormatSeconds(Millis(20000)), "20 s");
  EXPECT_EQ(FormatSeconds(Millis(12500)), "12.5 s");
}

// --- randomized timelines -------------------------------------------------
//
// A timeline: a cap, a quiet period and a floor; callers present at the
// pause, some of which acknowledge, vanish or never acknowledge; callers
// that appear later; traffic reports at random times, some before the pause
// is visible, some with unknown peers, some from another deploy, none at
// all. At every event the decision is compared with a reference evaluation
// of the rules written plainly here, and with the fixed wait (done exactly
// at the cap).

struct Sim {
  DrainConfig cfg;
  DrainInputs in;
};

// The rules, restated without the production code's structure.
bool ReferenceAllHold(const Sim& s) {
  const DrainInputs& in = s.in;
  if (!in.bad_callers.empty()) return false;
  for (const auto& [id, obs] : in.callers) {
    if (obs.record.list_pzxid() < in.pause_pzxid) return false;
  }
  if (!in.traffic) return false;
  const auto& r = in.traffic->report;
  if (r.deploy_id() != in.deploy_id) return false;
  if (r.source() != "sock_diag" && r.source() != "sock_diag+forwarder") {
    return false;
  }
  if (!in.traffic->written_after_pause) return false;
  if (static_cast<int64_t>(r.quiet_ms()) < s.cfg.quiet.count()) return false;
  if (r.peers_truncated()) return false;
  for (const auto& p : r.peers()) {
    bool known = false;
    auto check = [&](const proto::CallerRecord& c) {
      if (p.pid() != 0) {
        known = known || (c.pid() == p.pid() && c.host() == r.hostname());
      } else if (p.ip() != "127.0.0.1") {
        for (const auto& ip : c.ips()) known = known || ip == p.ip();
      }
    };
    for (const auto& [id, obs] : in.callers) check(obs.record);
    for (const auto& [id, rec] : in.departed) check(rec);
    if (!known) return false;
  }
  return in.now >= s.cfg.min;
}

TEST(DrainDecisionTest, RandomTimelinesNeverEndEarlyAndNeverLaterThanTheCap) {
  std::mt19937_64 rng(20261130);
  auto chance = [&](int percent) {
    return std::uniform_int_distribution<int>(0, 99)(rng) < percent;
  };
  auto pick = [&](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  int steps = 0;
  int ended_early = 0;
  int ended_at_cap = 0;
  int timelines = 0;
  while (steps < 10000) {
    ++timelines;
    Sim s;
    s.cfg.cap = Millis(pick(0, 20) * 500);
    s.cfg.quiet = Millis(pick(1, 8) * 100);
    s.cfg.min = Millis(pick(0, 3) == 0 ? pick(0, s.cfg.cap.count()) : 0);
    s.in = Base();
    const int n = pick(0, 5);
    for (int i = 0; i < n; ++i) {
      std::string id = "h1-" + std::to_string(100 + i) + "-1";
      s.in.callers_at_pause.insert(id);
      s.in.callers[id] = {Caller("h1", 100 + i, kPausePzxid - pick(1, 50)),
                          std::nullopt};
    }
    bool ended = false;
    Millis end_time{0};
    uint64_t last_activity = 0;       // ms since the pause of the last byte
    bool reached_cap_before = false;  // an earlier event was at the cap
    while (!ended) {
      ++steps;
      s.in.now += Millis(pick(0, 400));
      switch (pick(0, 9)) {
        case 0:
        case 1:
        case 2: {  // a caller acknowledges (or writes an older list)
          if (s.in.callers.empty()) break;
          auto it = s.in.callers.begin();
          std::advance(it, pick(0, static_cast<int>(s.in.callers.size()) - 1));
          it->second.record.set_list_pzxid(chance(85) ? kPausePzxid + pick(0, 3)
                                                      : kPausePzxid - 1);
          if (it->second.record.list_pzxid() >= kPausePzxid &&
              !it->second.acked_at) {
            it->second.acked_at = s.in.now;
          }
          break;
        }
        case 3: {  // a caller's session ends, or a new caller appears
          if (!s.in.callers.empty() && chance(50)) {
            auto it = s.in.callers.begin();
            s.in.departed[it->first] = it->second.record;
            s.in.callers.erase(it);
          } else {
            std::string id = "h1-" + std::to_string(pick(200, 299)) + "-2";
            s.in.callers[id] = {
                Caller("h1", pick(200, 299), kPausePzxid - pick(-2, 2)),
                std::nullopt};
          }
          break;
        }
        case 4:
          if (chance(10)) {
            s.in.bad_callers["junk-" + std::to_string(pick(0, 2))] = "bad";
          } else {
            s.in.bad_callers.clear();
          }
          break;
        default: {  // a traffic report
          TrafficObservation t = Report(0, chance(90));
          if (chance(3)) t.report.set_deploy_id("other");
          if (chance(3)) t.report.set_source("none");
          if (chance(3)) t.report.set_source("forwarder");
          if (chance(2)) t.report.set_peers_truncated(true);
          if (chance(30)) {
            last_activity = static_cast<uint64_t>(s.in.now.count());
          }
          t.report.set_quiet_ms(static_cast<uint64_t>(s.in.now.count()) -
                                last_activity + pick(0, 300));
          for (const auto& [id, obs] : s.in.callers) {
            if (chance(50)) AddPeer(&t, "127.0.0.1", obs.record.pid());
          }
          if (chance(8)) AddPeer(&t, "127.0.0.1", pick(1, 99));  // unknown
          if (chance(5)) AddPeer(&t, "127.0.0.1", 0);            // no pid
          if (chance(5)) AddPeer(&t, "10.9.9.9", 0);             // remote
          s.in.traffic = t;
          break;
        }
      }
      if (chance(2)) s.in.traffic.reset();  // the agent's node vanished
      DrainDecision d = DecideDrain(s.cfg, s.in);
      const bool all_hold = ReferenceAllHold(s);
      const bool reference_done = s.in.now >= s.cfg.cap;
      // Never before every condition holds, unless the cap says so.
      if (d.done && !reference_done) {
        ASSERT_TRUE(all_hold)
            << "ended early at " << s.in.now.count() << "ms: " << d.reason;
      }
      // Always by the cap; and, when every condition holds, at once.
      if (reference_done || all_hold) {
        ASSERT_TRUE(d.done) << "timeline " << timelines << " at "
                            << s.in.now.count() << "ms: " << d.reason;
      }
      ASSERT_EQ(d.at_cap, !all_hold) << d.reason;
      ASSERT_EQ(d.missing.empty(), all_hold) << d.reason;
      ASSERT_FALSE(d.reason.empty());
      if (!d.done) {
        ASSERT_GT(d.next_wake, s.in.now);
        ASSERT_LE(d.next_wake, s.cfg.cap);
      }
      if (d.done) {
        // Never later than the fixed wait, which ends at the first event
        // at or after the cap.
        ASSERT_FALSE(reached_cap_before);
        ended = true;
        end_time = s.in.now;
      }
      reached_cap_before = reached_cap_before || s.in.now >= s.cfg.cap;
    }
    if (end_time < s.cfg.cap) {
      ++ended_early;
    } else {
      ++ended_at_cap;
    }
  }
  // The generator must exercise both outcomes, or the test proves little.
  EXPECT_GT(ended_early, timelines / 10) << ended_early << "/" << timelines;
  EXPECT_GT(ended_at_cap, timelines / 10) << ended_at_cap << "/" << timelines;
}

}  // namespace
}  // namespace zkroll::coordinator
