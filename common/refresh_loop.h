// RefreshLoop: when a watcher of ZooKeeper nodes (the agent's PauseWatcher
// and SwitchWatcher) reads its nodes again, and which results it may keep.
//
// A watcher's read is a chain of asynchronous ZooKeeper calls. The loop runs
// at most one at a time: a Refresh() while one runs asks for one more read
// after it, so a burst of watch events costs two reads, not one per event,
// and the last read always starts after the last event. Every read carries
// the epoch it started in. Stop() and Invalidate() (the session expired and
// took the watches with it) begin a new epoch, so a callback of an abandoned
// read finds End() false and drops what it read. A slow periodic resync
// (every `resync`; none if it is not positive) makes up for anything a watch
// could miss.
//
// A read must end exactly once with End(epoch); when End returned true the
// owner takes the result and then calls Next(), which starts the read asked
// for meanwhile, if any.
//
// Threading: executor only, like its owner, which holds the loop as a member
// and is itself held by shared_ptr (timer handlers lock `owner` first).
#ifndef ZKROLL_COMMON_REFRESH_LOOP_H_
#define ZKROLL_COMMON_REFRESH_LOOP_H_

#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/duration.h"

namespace zkroll {

class RefreshLoop {
 public:
  // Starts one read in `epoch`.
  using ReadFn = std::function<void(uint64_t epoch)>;

  RefreshLoop(boost::asio::any_io_executor ex, Millis resync);

  RefreshLoop(const RefreshLoop&) = delete;
  RefreshLoop& operator=(const RefreshLoop&) = delete;

  // Reads now and every `resync`. `owner` owns this loop.
  void Start(std::weak_ptr<void> owner, ReadFn read);
  // No read starts any more; the one running is abandoned.
  void Stop();
  // Reads now, or once the running read ends.
  void Refresh();
  // Abandons the running read (its session is gone); the next Refresh()
  // starts a new one at once.
  void Invalidate();
  // Abandons the running read and starts it over now (it found the nodes
  // changing under it).
  void Restart();

  // False once the read of `epoch` was abandoned: each step of a read
  // checks it before it goes on or changes anything.
  bool Current(uint64_t epoch) const { return epoch == epoch_; }
  // Ends the read of `epoch`: false if it was abandoned, and then its
  // result must be dropped and Next() not called.
  bool End(uint64_t epoch);
  // After a read ended: starts the one asked for while it ran, if any.
  void Next();

  bool running() const { return running_; }

 private:
  void Read();
  void ArmResync();

  boost::asio::steady_timer resync_timer_;
  const Millis resync_;
  std::weak_ptr<void> owner_;
  ReadFn read_;
  bool running_ = false;
  bool in_flight_ = false;
  bool again_ = false;
  uint64_t epoch_ = 0;
};

}  // namespace zkroll

#endif  // ZKROLL_COMMON_REFRESH_LOOP_H_
