// Journal: the persistent record of one deploy or rollout in ZooKeeper.
//
//   /deploys/<service>/<deploy-id>              DeployRecord: parameters,
//                                               command, each instance's
//                                               outcome, final outcome
//   /deploys/<service>/<deploy-id>/<ip>_<port>  DeployRecord.InstanceProgress:
//                                               that instance's steps
//
// Steps live in one child node per instance because a rollout of a hundred
// instances with all their steps would not fit the 64 KiB payload limit of
// one node (common/payload.h). The record says "running" until Finish(); a
// coordinator that dies leaves "running" behind, which readers show as
// unfinished.
//
// Writes are few, because at fleet scale the ensemble's write rate is the
// limit: a change is written at once only where a reader or a recovery
// needs it at once, i.e. a persisted BeginStep (the start of COMMAND, which
// must be on record before COMMAND runs), WriteInstance(), an instance's
// final outcome and Finish(). Every other change (quick steps, the end of a
// step, "running") is held for at most kFlushDelay (2 s) and goes out with
// the next of those writes, or by itself when the delay has passed, so a
// step still running after two seconds is on record, and a quick instance
// costs two writes: its COMMAND start and its outcome (the delay is long
// enough that a loaded machine does not add a third). An instance's node
// and the record are written together in one multi (one transaction) when
// both changed. A coordinator killed mid-step therefore loses at most the
// last second of step changes, never a started COMMAND or an outcome.
//
// Writing the journal never stops a deploy by itself: a failed write is
// logged and the whole node is written again at the next update. The one
// write a caller may wait for is a persisted BeginStep's (`written`): the
// deploy starts COMMAND only once its start is on record. Writes are version-checked
// so an unexpected writer is noticed (and logged) rather than silently lost.
//
// Thread-safety: all methods are thread-safe (instances of a batch report
// concurrently). Writes of one node are serialized; writes of different
// instances' nodes run in parallel, so ZooKeeper can pipeline them. Held
// changes are written by a thread of the journal's own.
#ifndef ZKROLL_COORDINATOR_JOURNAL_H_
#define ZKROLL_COORDINATOR_JOURNAL_H_

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/duration.h"
#include "common/names.h"
#include "common/retry.h"
#include "common/states.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

class Journal {
 public:
  // Creates the record node (and /deploys/<service>) with outcome
  // "running" and every instance "pending". Writes that fail transiently
  // (connection loss, a session being replaced) are retried for up to
  // `retry_window` by Finish() and briefly by the step updates.
  static Result<std::unique_ptr<Journal>> Start(ZkSession* session,
                                                const AclList& acl,
                                                const ServiceName& service,
                                                proto::DeployRecord record,
                                                Millis retry_window);
  // Continues the record of deploy `id` (`zkroll rollout --resume`): reads
  // it and its instance nodes (their steps are kept; new steps are appended),
  // sets the outcome back to "running" (ended_at cleared) and appends
  // `resumed`. The caller holds the service lock. Fails with the ZooKeeper
  // error, NotFound, or Aborted if the record changed between the read and
  // the write (someone else wrote it).
  static Result<std::unique_ptr<Journal>> Reopen(
      ZkSession* session, const AclList& acl, const ServiceName& service,
      const DeployId& id, const proto::DeployRecord::Resumption& resumed,
      Millis retry_window);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends a step with verdict "running" and returns its index. With
  // `persist` the node is written before this returns (the start of
  // COMMAND); otherwise within kFlushDelay or with the next write: quick
  // steps are not worth a ZooKeeper write (and its fsync) of their own.
  // `written` (may be null) gets the status of that write (Ok when not
  // persisted).
  int BeginStep(const InstanceAddress& instance, const std::string& name,
                const std::string& detail, bool persist,
                Status* written = nullptr);
  // Writes `instance`'s node as it is now (after a failed write the caller
  // must see succeed), with the same brief retries as the step updates.
  Status WriteInstance(const InstanceAddress& instance);
  // WriteInstance through ZooKeeper session `session_id` only (retried
  // while it is the current one): the write that records COMMAND's start
  // after a failed first attempt. Made from a renewed session it would put
  // a COMMAND start on record while the flag that session's predecessor
  // held is gone; COMMAND is then not run, so it must not be recorded.
  Status WriteInstanceInSession(const InstanceAddress& instance,
                                int64_t session_id);
  // Completes step `index` (from BeginStep); written within kFlushDelay or
  // with the next write.
  void EndStep(const InstanceAddress& instance, int index, StepVerdict verdict,
               const std::string& detail);
  // Records the process COMMAND runs as in step `index` (the "command"
  // step), written within kFlushDelay or with the next write: a
  // coordinator killed while COMMAND runs leaves it for `rollout --resume`
  // (process_identity.h).
  void SetStepProcess(const InstanceAddress& instance, int index,
                      const proto::DeployRecord::Step::Process& process);
  // pending | running | reverting | succeeded | failed | aborted |
  // reverted | revert-failed. A final outcome (every one but pending,
  // running and reverting) is written at once, with the instance's steps,
  // in one transaction with the record; the others are held like a step
  // change.
  void SetInstanceOutcome(const InstanceAddress& instance,
                          InstanceOutcome outcome);
  // Writes every held change, then sets the final outcome and end time.
  // Retries for the retry window: this is the one write a reader most
  // needs.
  Status Finish(RunOutcome outcome, const std::string& detail);

  const std::string& path() const { return path_; }
  proto::DeployRecord record() const;

  // How long a change that nobody waits for may stay unwritten.
  static constexpr Millis kFlushDelay{2000};

 private:
  Journal(ZkSession* session, AclList acl, ServiceName service, DeployId id,
          std::string path, proto::DeployRecord record, int32_t version,
          Millis retry_window);
  struct Node {
    std::mutex mu;  // guards the fields below and the node's writes
    proto::DeployRecord::InstanceProgress progress;
    int32_t version = -1;  // -1: not created yet
    bool dirty = false;    // changed since its last successful write
  };
  // The node of `instance`, created on first use (stable address).
  Node& NodeFor(const InstanceAddress& instance);
  // Lock order: a Node's mu before mu_.
  Status WriteRecordLocked(Millis window);
  // Writes the node (and, in the same multi, the record when it has held
  // changes). Needs node.mu.
  Status WriteInstanceLocked(const InstanceAddress& instance, Node& node);
  Status WriteNodeAloneLocked(const InstanceAddress& instance, Node& node);
  proto::DeployRecord::InstanceProgress* RecordEntryLocked(
      const InstanceAddress& instance);
  // Holds a change of `instance`'s node (or of the record, with nullptr)
  // for the flush thread.
  void Hold(const InstanceAddress* instance);
  void FlushLoop();
  // Writes every held change now.
  void FlushAll();

  // The flush thread's state, guarded by flush_mu_ (taken last).
  std::mutex flush_mu_;
  std::condition_variable flush_cv_;
  std::map<InstanceAddress, std::chrono::steady_clock::time_point> due_;  // held nodes
  std::optional<std::chrono::steady_clock::time_point> record_due_;       // held record
  bool stopping_ = false;
  std::thread flusher_;

  ZkSession* session_;
  ZkRetryContext retry_;  // stateless: shared by the deploy threads
  AclList acl_;
  ServiceName service_;
  DeployId id_;
  std::string path_;
  mutable std::mutex mu_;  // guards record_, version_ and the map nodes_
  proto::DeployRecord record_;
  int32_t version_;
  bool record_dirty_ = false;  // changed since its last successful write
  std::map<InstanceAddress, Node> nodes_;
  Millis retry_window_;
};

// The states of a journal read from znode `path` (a record, or one
// instance's node) are words of their sets (common/states.h): Ok, or
// InvalidArgument naming the path, the field and the word. ReadJournal and
// Journal::Reopen check every record they return, so the typed accessors
// below can be used on it.
Status CheckJournalStates(const proto::DeployRecord& record,
                          std::string_view path);
Status CheckJournalStates(const proto::DeployRecord::InstanceProgress& progress,
                          std::string_view path);

// The typed states of a checked record (or one this coordinator built).
// A word outside its set here is a bug of ours: CHECK-fails.
RunOutcome OutcomeOf(const proto::DeployRecord& record);
InstanceOutcome OutcomeOf(
    const proto::DeployRecord::InstanceProgress& progress);
StepVerdict VerdictOf(const proto::DeployRecord::Step& step);

// Reads a record and, with `with_steps`, merges the per-instance step
// nodes into record.instances(i).steps. A record whose states are not
// words of their sets is refused (CheckJournalStates); an instance node
// that is, is left out with a warning, as one that does not parse.
Result<proto::DeployRecord> ReadJournal(ZkSession* session,
                                        const ServiceName& service,
                                        const DeployId& id, bool with_steps);

// Deploy ids of `service`, oldest first (ids sort by start time).
Result<std::vector<DeployId>> ListJournals(ZkSession* session,
                                           const ServiceName& service);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_JOURNAL_H_
