#include "coordinator/node_wait.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace zkroll::coordinator {
namespace {

// A missing node: an exists watch wakes us when it is created.
Status Missing(const std::string& path) {
  return NotFound(path + " does not exist");
}

NodeRead ReadOnce(ZkSession* session, const std::string& path, NodeWatch kind,
                  const ZkSession::WatchCallback& watcher) {
  NodeRead read;
  // A node created between a failed read and the exists watch that follows
  // it is read again once, now with the watch of the kind asked for.
  for (int pass = 0; pass < 2; ++pass) {
    if (kind == NodeWatch::kData) {
      auto d = session->GetSync(path, watcher);
      if (d.ok()) {
        read.status = Status::Ok();
        read.stat = d->stat;
        read.data = d->data;
        return read;
      }
      if (d.status().code() != StatusCode::kNotFound) {
        read.status = d.status();
        return read;
      }
    } else if (kind == NodeWatch::kChildren) {
      auto c = session->GetChildrenSync(path, watcher);
      if (c.ok()) {
        read.status = Status::Ok();
        read.stat = c->stat;
        read.children = c->names;
        return read;
      }
      if (c.status().code() != StatusCode::kNotFound) {
        read.status = c.status();
        return read;
      }
    }
    // kExists, or the node was missing: watch its existence.
    auto e = session->ExistsSync(path, watcher);
    if (!e.ok()) {
      read.status = e.status();
      return read;
    }
    if (!e->has_value()) {
      read.status = Missing(path);
      return read;
    }
    if (kind == NodeWatch::kExists) {
      read.status = Status::Ok();
      read.stat = **e;
      return read;
    }
  }
  // Created and deleted again while we looked: report it missing; the
  // exists watch set above wakes us at its next change.
  read.status = Missing(path);
  return read;
}

}  // namespace

NodeWatchSet::NodeWatchSet(ZkSession* session, AbortSignal* abort)
    : session_(session),
      abort_(abort),
      fired_(std::make_shared<Fired>()),
      waker_(abort),
      session_id_(session->session_id()) {}

NodeWatchSet::~NodeWatchSet() = default;

NodeRead NodeWatchSet::Read(const std::string& key, const std::string& path,
                            NodeWatch kind) {
  known_.insert(key);
  auto watcher = [fired = fired_, waker = waker_.waker(),
                  key](const WatchEvent&) {
    {
      std::lock_guard<std::mutex> l(fired->mu);
      fired->keys.insert(key);
    }
    fired->cv.notify_all();
    waker->Wake();
  };
  return ReadOnce(session_, path, kind, watcher);
}

void NodeWatchSet::Forget(const std::string& key) { known_.erase(key); }

std::set<std::string> NodeWatchSet::TakeChanged() {
  std::set<std::string> out;
  {
    std::lock_guard<std::mutex> l(fired_->mu);
    out.swap(fired_->keys);
  }
  const int64_t sid = session_->session_id();
  if (sid != session_id_) {
    // A new session lost every watch: everything known is read again.
    session_id_ = sid;
    out.insert(known_.begin(), known_.end());
  }
  return out;
}

bool NodeWatchSet::AnyFired() const {
  std::lock_guard<std::mutex> l(fired_->mu);
  return !fired_->keys.empty();
}

AbortSignal::WaitResult NodeWatchSet::Wait(Clock::time_point deadline,
                                           const std::function<bool()>& also,
                                           bool stop_on_abort) {
  if (!abort_->requested()) {
    auto w = abort_->WaitUntil(
        [&] {
          return AnyFired() || session_->session_id() != session_id_ ||
                 (also && also());
        },
        deadline);
    if (w != AbortSignal::WaitResult::kAborted) return w;
  }
  if (stop_on_abort) return AbortSignal::WaitResult::kAborted;
  // A cleanup after a stop: the AbortSignal no longer blocks, and session
  // changes are not signalled here, so wait on the watches in slices.
  std::unique_lock<std::mutex> l(fired_->mu);
  const bool fired =
      fired_->cv.wait_until(l, std::min(deadline, Clock::now() + Millis(200)),
                            [&] { return !fired_->keys.empty(); });
  return fired ? AbortSignal::WaitResult::kReady
               : AbortSignal::WaitResult::kTimedOut;
}

NodeWaitResult WaitForNode(ZkSession* session, AbortSignal* abort,
                           const std::string& path,
                           const NodeWaitOptions& options,
                           const std::function<bool(const NodeRead&)>& done) {
  using Clock = AbortSignal::Clock;
  NodeWatchSet watches(session, abort);
  NodeWaitResult result;
  while (true) {
    (void)watches.TakeChanged();  // one node: it is read again anyway
    result.last = watches.Read(path, path, options.watch);
    const Status& s = result.last.status;
    if (done(result.last)) {
      result.end = NodeWaitResult::End::kDone;
      return result;
    }
    // A watch is set when the read was answered (the node or its absence).
    const bool watched = s.ok() || s.code() == StatusCode::kNotFound;
    if (!watched && options.fail_on_error && !s.IsRetryable()) {
      result.end = NodeWaitResult::End::kFailed;
      return result;
    }
    const auto now = Clock::now();
    if (now >= options.deadline) {
      result.end = NodeWaitResult::End::kTimedOut;
      return result;
    }
    const auto until =
        std::min(options.deadline, now + (watched ? options.resync
                                                  : options.retry));
    auto w = watches.Wait(
        until,
        [&] { return !watched && s.IsRetryable() && session->connected(); },
        options.stop_on_abort);
    if (w == AbortSignal::WaitResult::kAborted) {
      result.end = NodeWaitResult::End::kAborted;
      return result;
    }
  }
}

}  // namespace zkroll::coordinator
