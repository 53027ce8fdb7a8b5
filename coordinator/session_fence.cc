#include "coordinator/session_fence.h"

#include <csignal>
#include <cstdio>
#include <optional>

namespace zkroll::coordinator {
namespace {

std::string Hex(int64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(id));
  return buf;
}

}  // namespace

SessionFence::SessionFence(ZkSession* session, AbortSignal* wake,
                           int64_t owner, Millis limit)
    : session_(session), wake_(wake), owner_(owner), limit_(limit) {
  if (limit_ <= Millis(0)) limit_ = session_->negotiated_timeout() * 2 / 3;
  if (limit_ <= Millis(0)) limit_ = session_->options().session_timeout * 2 / 3;
  thread_ = std::thread([this] { Watch(); });
}

SessionFence::~SessionFence() {
  done_ = true;
  wake_->Wake();
  thread_.join();
}

std::string SessionFence::reason() const {
  std::lock_guard<std::mutex> l(mu_);
  return reason_;
}

void SessionFence::Fall(const std::string& why) {
  {
    std::lock_guard<std::mutex> l(mu_);
    reason_ = why;
  }
  LOG(WARNING) << why;
  fallen_.Request(SIGTERM);
}

void SessionFence::Watch() {
  using Clock = AbortSignal::Clock;
  // When we first saw the client disconnected; reset when it is back.
  std::optional<Clock::time_point> lost_since;
  while (!done_) {
    const int64_t sid = session_->session_id();
    if (sid != owner_) {
      Fall("the coordinator's ZooKeeper session " + Hex(owner_) +
           " ended (now " + (sid == 0 ? std::string("none") : Hex(sid)) +
           "): its pause flag and lock are gone");
      return;
    }
    const auto now = Clock::now();
    if (session_->connected()) {
      lost_since.reset();
    } else if (!lost_since) {
      lost_since = now;
    } else if (now - *lost_since >= limit_) {
      Fall("the coordinator has been disconnected from ZooKeeper for " +
           FormatDuration(std::chrono::duration_cast<Millis>(now -
                                                             *lost_since)) +
           " (over two thirds of the session timeout): its session " +
           Hex(owner_) + " may have expired without it hearing");
      return;
    }
    // Every session event wakes us; the deadline covers a disconnect that
    // lasts (no further event comes then).
    const auto deadline =
        lost_since ? *lost_since + limit_ : now + std::chrono::seconds(5);
    auto w = wake_->WaitUntil(
        [&] {
          return done_.load() || session_->session_id() != owner_ ||
                 session_->connected() != !lost_since.has_value();
        },
        deadline);
    if (w == AbortSignal::WaitResult::kAborted) return;  // RunCommand stops
  }
}

}  // namespace zkroll::coordinator
