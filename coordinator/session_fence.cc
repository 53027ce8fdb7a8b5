#include "coordinator/session_fence.h"

#include <glog/logging.h>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <optional>

namespace zkroll::coordinator {
namespace {

std::string Hex(int64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(id));
  return buf;
}

Millis ToMillis(SessionFence::Clock::duration d) {
  return std::chrono::duration_cast<Millis>(d);
}

}  // namespace

// What the reads report back. Their completions may run after the fence is
// gone, so they hold this, not the fence, and wake through a Waker the
// fence disarms when it goes (abort_signal.h).
struct SessionFence::Probe {
  std::mutex mu;
  std::shared_ptr<Waker> waker;
  Clock::time_point confirmed;      // last confirmed contact
  bool in_flight = false;
  Clock::time_point sent{};         // of the read in flight / last sent
  std::string broken;               // set when the node is not ours
  uint64_t answers = 0;             // bumped by every completion
};

SessionFence::SessionFence(ZkSession* session, AbortSignal* wake,
                           int64_t owner, std::string ephemeral,
                           Clock::time_point confirmed_at, Millis limit)
    : session_(session),
      wake_(wake),
      owner_(owner),
      ephemeral_(std::move(ephemeral)),
      limit_(limit),
      probe_(std::make_shared<Probe>()),
      waker_(wake) {
  if (limit_ <= Millis(0)) limit_ = session_->negotiated_timeout() * 2 / 3;
  if (limit_ <= Millis(0)) limit_ = session_->options().session_timeout * 2 / 3;
  probe_->waker = waker_.waker();
  probe_->confirmed = confirmed_at;
  LOG(INFO) << "fence on session " << Hex(owner_) << " (" << ephemeral_
            << "): last confirmed contact "
            << FormatDuration(ToMillis(Clock::now() - confirmed_at))
            << " ago, falls " << FormatDuration(limit_)
            << " after the last confirmed contact";
  thread_ = std::thread([this] { Watch(); });
}

SessionFence::~SessionFence() {
  done_ = true;
  wake_->Wake();
  thread_.join();
  // waker_ is disarmed as it is destroyed: a late answer wakes nobody.
}

std::string SessionFence::reason() const {
  std::lock_guard<std::mutex> l(mu_);
  return reason_;
}

SessionFence::Clock::time_point SessionFence::last_confirmed() const {
  std::lock_guard<std::mutex> l(probe_->mu);
  return probe_->confirmed;
}

SessionFence::Clock::time_point SessionFence::fell_at() const {
  std::lock_guard<std::mutex> l(mu_);
  return fell_at_;
}

SessionFence::Clock::time_point SessionFence::deadline_at_fall() const {
  std::lock_guard<std::mutex> l(mu_);
  return deadline_at_fall_;
}

void SessionFence::Fall(const std::string& why, Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> l(mu_);
    reason_ = why;
    fell_at_ = Clock::now();
    deadline_at_fall_ = deadline;
  }
  LOG(WARNING) << why;
  fallen_.Request(SIGTERM);
}

void SessionFence::SendProbe(Clock::time_point now) {
  {
    std::lock_guard<std::mutex> l(probe_->mu);
    probe_->in_flight = true;
    probe_->sent = now;
  }
  // A plain read (no sync): any server that answers has heard from us, and
  // the session check below does not depend on how current its view is;
  // a node gone at the leader but not yet here is caught by the check after
  // COMMAND (which syncs) or by the next read.
  const int64_t owner = owner_;
  const std::string path = ephemeral_;
  std::shared_ptr<Probe> probe = probe_;
  session_->Exists(
      path, {},
      [probe, owner, path, now](Result<std::optional<NodeStat>> r) {
        std::unique_lock<std::mutex> l(probe->mu);
        probe->in_flight = false;
        ++probe->answers;
        if (r.ok()) {
          if (now > probe->confirmed) probe->confirmed = now;
          if (!r->has_value()) {
            probe->broken = path + " is gone (deleted, or expired with the "
                                   "session)";
          } else if ((*r)->ephemeral_owner != owner) {
            probe->broken = path + " now belongs to session " +
                            Hex((*r)->ephemeral_owner) + ", not to ours";
          }
        } else if (r.status().code() == StatusCode::kNotFound) {
          if (now > probe->confirmed) probe->confirmed = now;
          probe->broken = path + " is gone (deleted, or expired with the "
                                 "session)";
        }
        // Other errors (connection loss, timeout) confirm nothing.
        std::shared_ptr<Waker> waker = probe->waker;
        l.unlock();  // Wake() takes the signal's lock, our waiter this one
        waker->Wake();
      });
}

void SessionFence::Watch() {
  // Reads confirm contact this often, so a healthy session keeps its last
  // confirmed contact well within the limit.
  const auto every = std::max<Clock::duration>(limit_ / 4, Millis(20));
  uint64_t seen = 0;
  while (!done_) {
    const int64_t sid = session_->session_id();
    if (sid != owner_) {
      Fall("the coordinator's ZooKeeper session " + Hex(owner_) +
               " ended (now " + (sid == 0 ? std::string("none") : Hex(sid)) +
               "): its pause flag and lock are gone",
           Clock::time_point{});
      return;
    }
    Clock::time_point confirmed, sent;
    bool in_flight;
    std::string broken;
    {
      std::lock_guard<std::mutex> l(probe_->mu);
      confirmed = probe_->confirmed;
      sent = probe_->sent;
      in_flight = probe_->in_flight;
      broken = probe_->broken;
      seen = probe_->answers;
    }
    const auto deadline = confirmed + limit_;
    const auto now = Clock::now();
    if (!broken.empty()) {
      Fall("the coordinator's " + broken + ": its session " + Hex(owner_) +
               " no longer holds what COMMAND relies on",
           deadline);
      return;
    }
    if (now >= deadline) {
      Fall("the coordinator has not heard from ZooKeeper for " +
               FormatDuration(ToMillis(now - confirmed)) +
               " since its last confirmed contact (limit " +
               FormatDuration(limit_) +
               ", two thirds of the session timeout): its session " +
               Hex(owner_) + " may have expired without it hearing",
           deadline);
      return;
    }
    auto next_probe = sent + every;
    if (!in_flight && now >= next_probe) {
      SendProbe(now);
      next_probe = now + every;
    }
    // A read's answer or any session event wakes us; the deadline holds
    // even when no answer comes.
    const auto until = in_flight ? deadline : std::min(deadline, next_probe);
    auto w = wake_->WaitUntil(
        [&] {
          if (done_.load() || session_->session_id() != owner_) return true;
          std::lock_guard<std::mutex> l(probe_->mu);
          return probe_->answers != seen;
        },
        until);
    if (w == AbortSignal::WaitResult::kAborted) return;  // RunCommand stops
  }
}

}  // namespace zkroll::coordinator
