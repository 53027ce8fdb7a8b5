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

NodeWaitResult WaitForNode(ZkSession* session, AbortSignal* abort,
                           const std::string& path,
                           const NodeWaitOptions& options,
                           const std::function<bool(const NodeRead&)>& done) {
  using Clock = AbortSignal::Clock;
  // The watch wakes both kinds of waiter: the abortable one (through the
  // AbortSignal) and the cleanup one, which must keep waiting after a stop
  // was requested and so sleeps on the watch's own condition variable.
  struct Watch {
    std::mutex mu;
    std::condition_variable cv;
    bool fired = false;
  };
  NodeWaitResult result;
  while (true) {
    auto watch = std::make_shared<Watch>();
    auto watcher = [watch, abort](const WatchEvent&) {
      {
        std::lock_guard<std::mutex> l(watch->mu);
        watch->fired = true;
      }
      watch->cv.notify_all();
      abort->Wake();
    };
    const int64_t sid = session->session_id();
    result.last = ReadOnce(session, path, options.watch, watcher);
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
    auto fired = [&] {
      std::lock_guard<std::mutex> l(watch->mu);
      return watch->fired;
    };
    if (!abort->requested()) {
      auto w = abort->WaitUntil(
          [&] {
            return fired() || session->session_id() != sid ||
                   (!watched && s.IsRetryable() && session->connected());
          },
          until);
      if (w != AbortSignal::WaitResult::kAborted) continue;
    }
    if (options.stop_on_abort) {
      result.end = NodeWaitResult::End::kAborted;
      return result;
    }
    // A cleanup after a stop: the AbortSignal no longer blocks, and session
    // changes are not signalled here, so wait on the watch in slices.
    std::unique_lock<std::mutex> l(watch->mu);
    watch->cv.wait_until(l, std::min(until, Clock::now() + Millis(200)),
                         [&] { return watch->fired; });
  }
}

}  // namespace zkroll::coordinator
