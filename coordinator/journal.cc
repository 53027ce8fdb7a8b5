#include "coordinator/journal.h"

#include <glog/logging.h>

#include <algorithm>
#include <thread>

#include "common/clock.h"
#include "common/paths.h"
#include "common/payload.h"
#include "coordinator/connection.h"

namespace zkroll::coordinator {
namespace {

// Step updates wait at most this long for a lost connection to come back:
// the journal must not hold up the deploy (the next update rewrites the
// whole node anyway).
constexpr Millis kStepRetryWindow{2000};

}  // namespace

Journal::Journal(ZkSession* session, AclList acl, ServiceName service,
                 DeployId id, std::string path, proto::DeployRecord record,
                 int32_t version, Millis retry_window)
    : session_(session),
      retry_(session),
      acl_(std::move(acl)),
      service_(std::move(service)),
      id_(std::move(id)),
      path_(std::move(path)),
      record_(std::move(record)),
      version_(version),
      retry_window_(retry_window) {
  flusher_ = std::thread([this] { FlushLoop(); });
}

Journal::~Journal() {
  {
    std::lock_guard<std::mutex> l(flush_mu_);
    stopping_ = true;
  }
  flush_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
}

Result<std::unique_ptr<Journal>> Journal::Start(ZkSession* session,
                                                const AclList& acl,
                                                const ServiceName& service,
                                                proto::DeployRecord record,
                                                Millis retry_window) {
  auto id = DeployId::Parse(record.deploy_id());
  if (!id.ok()) return id.status();
  record.set_outcome(WireString(RunOutcome::kRunning));
  if (record.started_at().empty()) record.set_started_at(NowRfc3339());
  for (auto& inst : *record.mutable_instances()) {
    if (inst.outcome().empty()) {
      inst.set_outcome(WireString(InstanceOutcome::kPending));
    }
  }
  ZKROLL_RETURN_IF_ERROR(
      session->EnsurePathSync(paths::DeployDir(service), acl));
  const std::string path = paths::DeployNode(service, *id);
  auto created =
      session->CreateSync(path, ToJson(record), CreateMode::kPersistent, acl);
  if (!created.ok()) {
    return created.status().WithContext("cannot create the deploy journal");
  }
  return std::unique_ptr<Journal>(new Journal(
      session, acl, service, *id, path, std::move(record), 0, retry_window));
}

Result<std::unique_ptr<Journal>> Journal::Reopen(
    ZkSession* session, const AclList& acl, const ServiceName& service,
    const DeployId& id, const proto::DeployRecord::Resumption& resumed,
    Millis retry_window) {
  const std::string path = paths::DeployNode(service, id);
  ZkRetryContext retry(session);
  auto data = Retry(retry, CoordinatorRetry(retry_window),
                    [&] { return session->GetSync(path); });
  if (!data.ok()) return data.status();
  auto record = ParsePayload<proto::DeployRecord>(data->data, path);
  if (!record.ok()) return record.status();
  ZKROLL_RETURN_IF_ERROR(CheckJournalStates(*record, path));
  record->set_outcome(WireString(RunOutcome::kRunning));
  record->clear_ended_at();
  *record->add_resumed() = resumed;
  auto written = Retry(retry, CoordinatorRetry(retry_window), [&] {
    return session->SetSync(path, ToJson(*record), data->stat.version);
  });
  if (!written.ok()) {
    if (written.status().code() == StatusCode::kBadVersion) {
      return Aborted("the journal " + path +
                     " changed while it was being resumed; look at it with "
                     "`zkroll history` and try again");
    }
    return written.status().WithContext("cannot reopen the journal");
  }
  std::unique_ptr<Journal> journal(new Journal(session, acl, service, id, path,
                                               *record, written->version,
                                               retry_window));
  // The instance nodes that exist keep their steps and versions.
  for (const auto& inst : record->instances()) {
    auto addr = InstanceAddress::ParseNodeName(inst.instance());
    if (!addr.ok()) continue;
    const std::string child = paths::DeployInstanceNode(service, id, *addr);
    auto node_data = Retry(retry, CoordinatorRetry(retry_window),
                           [&] { return session->GetSync(child); });
    if (!node_data.ok()) {
      if (node_data.status().code() == StatusCode::kNotFound) continue;
      return node_data.status();
    }
    auto progress = ParsePayload<proto::DeployRecord::InstanceProgress>(
        node_data->data, child);
    if (!progress.ok()) return progress.status();
    ZKROLL_RETURN_IF_ERROR(CheckJournalStates(*progress, child));
    Node& node = journal->nodes_[*addr];
    node.progress = *std::move(progress);
    node.version = node_data->stat.version;
  }
  return journal;
}

proto::DeployRecord Journal::record() const {
  std::lock_guard<std::mutex> l(mu_);
  return record_;
}

proto::DeployRecord::InstanceProgress* Journal::RecordEntryLocked(
    const InstanceAddress& instance) {
  const std::string name = instance.NodeName();
  for (auto& inst : *record_.mutable_instances()) {
    if (inst.instance() == name) return &inst;
  }
  auto* inst = record_.add_instances();
  inst->set_instance(name);
  inst->set_outcome(WireString(InstanceOutcome::kPending));
  return inst;
}

Status Journal::WriteRecordLocked(Millis window) {
  const std::string json = ToJson(record_);
  bool transient = false;  // a failed attempt may still have applied
  auto r = Retry(retry_, CoordinatorRetry(window), [&] {
    auto w = session_->SetSync(path_, json, version_);
    transient = transient || (!w.ok() && w.status().IsTransient(Status::RetryIn::kAnySession));
    return w;
  });
  if (r.status().code() == StatusCode::kBadVersion) {
    if (!transient) {
      LOG(WARNING) << "journal " << path_
                   << " was changed by someone else; overwriting it";
    }
    r = Retry(retry_, CoordinatorRetry(window),
                       [&] { return session_->SetSync(path_, json, -1); });
  }
  if (!r.ok()) {
    LOG(WARNING) << "cannot update journal " << path_ << ": "
                 << r.status().ToString() << " (retried at the next update)";
    return r.status();
  }
  version_ = r->version;
  record_dirty_ = false;
  return Status::Ok();
}

Status Journal::WriteInstanceLocked(const InstanceAddress& instance,
                                    Node& node) {
  node.progress.set_instance(instance.NodeName());
  std::unique_lock<std::mutex> record_lock(mu_);
  if (record_dirty_) {
    // Both in one transaction: half the fsyncs, and a reader never sees
    // the instance's outcome in one node and not in the other.
    const std::string path =
        paths::DeployInstanceNode(service_, id_, instance);
    std::vector<ZkOp> ops;
    ops.push_back(node.version < 0
                      ? ZkOp::Create(path, ToJson(node.progress),
                                     CreateMode::kPersistent, acl_)
                      : ZkOp::SetData(path, ToJson(node.progress),
                                      node.version));
    ops.push_back(ZkOp::SetData(path_, ToJson(record_), version_));
    MultiResult m = session_->MultiSync(std::move(ops));
    if (m.status.ok() && m.results.size() == 2) {
      node.version = node.version < 0 ? 0 : m.results[0].stat.version;
      node.dirty = false;
      version_ = m.results[1].stat.version;
      record_dirty_ = false;
      return Status::Ok();
    }
    // One write each, with their retries and version handling (a multi
    // that failed on a lost reply may have applied: they overwrite).
    (void)WriteRecordLocked(std::min(retry_window_, kStepRetryWindow));
  }
  record_lock.unlock();
  return WriteNodeAloneLocked(instance, node);
}

Status Journal::WriteNodeAloneLocked(const InstanceAddress& instance,
                                     Node& node) {
  const std::string path = paths::DeployInstanceNode(service_, id_, instance);
  const std::string json = ToJson(node.progress);
  const Millis window = std::min(retry_window_, kStepRetryWindow);
  bool transient = false;
  if (node.version < 0) {
    auto created = Retry(retry_, CoordinatorRetry(window), [&] {
      auto c = session_->CreateSync(path, json, CreateMode::kPersistent, acl_);
      transient = transient || (!c.ok() && c.status().IsTransient(Status::RetryIn::kAnySession));
      return c;
    });
    if (created.ok()) {
      node.version = 0;
      node.dirty = false;
      return Status::Ok();
    }
    if (created.status().code() != StatusCode::kAlreadyExists) {
      LOG(WARNING) << "cannot write journal " << path << ": "
                   << created.status().ToString();
      return created.status();
    }
  }
  auto r = Retry(retry_, CoordinatorRetry(window), [&] {
    auto w = session_->SetSync(path, json, node.version);
    transient = transient || (!w.ok() && w.status().IsTransient(Status::RetryIn::kAnySession));
    return w;
  });
  if (r.status().code() == StatusCode::kBadVersion ||
      (node.version < 0 && !r.ok())) {
    if (!transient && node.version >= 0) {
      LOG(WARNING) << "journal " << path
                   << " was changed by someone else; overwriting it";
    }
    r = Retry(retry_, CoordinatorRetry(window),
                       [&] { return session_->SetSync(path, json, -1); });
  }
  if (!r.ok()) {
    LOG(WARNING) << "cannot update journal " << path << ": "
                 << r.status().ToString() << " (retried at the next update)";
    return r.status();
  }
  node.version = r->version;
  node.dirty = false;
  return Status::Ok();
}

void Journal::Hold(const InstanceAddress* instance) {
  const auto due = std::chrono::steady_clock::now() + kFlushDelay;
  std::lock_guard<std::mutex> l(flush_mu_);
  if (instance != nullptr) {
    due_.emplace(*instance, due);  // an earlier due time stays
  } else if (!record_due_) {
    record_due_ = due;
  }
  flush_cv_.notify_all();
}

void Journal::FlushLoop() {
  using SteadyClock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> l(flush_mu_);
  while (!stopping_) {
    auto next = SteadyClock::time_point::max();
    for (const auto& [a, t] : due_) next = std::min(next, t);
    if (record_due_) next = std::min(next, *record_due_);
    if (next == SteadyClock::time_point::max()) {
      flush_cv_.wait(l);
      continue;
    }
    const auto now = SteadyClock::now();
    if (now < next) {
      flush_cv_.wait_until(l, next);
      continue;
    }
    std::vector<InstanceAddress> nodes;
    for (auto it = due_.begin(); it != due_.end();) {
      if (it->second <= now) {
        nodes.push_back(it->first);
        it = due_.erase(it);
      } else {
        ++it;
      }
    }
    const bool record = record_due_ && *record_due_ <= now;
    if (record) record_due_.reset();
    l.unlock();
    for (const InstanceAddress& a : nodes) {
      Node& node = NodeFor(a);
      std::lock_guard<std::mutex> nl(node.mu);
      if (!node.dirty) continue;  // written meanwhile
      (void)WriteInstanceLocked(a, node);
      if (node.dirty) Hold(&a);  // failed: again after the delay
    }
    if (record) {
      std::lock_guard<std::mutex> rl(mu_);
      if (record_dirty_) {
        (void)WriteRecordLocked(std::min(retry_window_, kStepRetryWindow));
        if (record_dirty_) Hold(nullptr);
      }
    }
    l.lock();
  }
}

void Journal::FlushAll() {
  {
    std::lock_guard<std::mutex> l(flush_mu_);
    due_.clear();
    record_due_.reset();
  }
  std::vector<std::pair<InstanceAddress, Node*>> nodes;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [a, n] : nodes_) nodes.emplace_back(a, &n);
  }
  for (auto& [a, node] : nodes) {
    std::lock_guard<std::mutex> nl(node->mu);
    if (node->dirty) (void)WriteInstanceLocked(a, *node);
  }
}

Journal::Node& Journal::NodeFor(const InstanceAddress& instance) {
  std::lock_guard<std::mutex> l(mu_);
  return nodes_[instance];  // std::map: references stay valid
}

int Journal::BeginStep(const InstanceAddress& instance, const std::string& name,
                       const std::string& detail, bool persist,
                       Status* written) {
  Node& node = NodeFor(instance);
  std::lock_guard<std::mutex> l(node.mu);
  node.progress.set_instance(instance.NodeName());
  node.progress.set_outcome(WireString(InstanceOutcome::kRunning));
  auto* step = node.progress.add_steps();
  step->set_name(name);
  step->set_started_at(NowRfc3339());
  step->set_verdict(WireString(StepVerdict::kRunning));
  step->set_detail(detail);
  node.dirty = true;
  Status w = persist ? WriteInstanceLocked(instance, node) : Status::Ok();
  // A persisted start that failed is the caller's to write again (the
  // start of COMMAND: only in the session that holds the flag, see
  // WriteInstanceInSession), never the flusher's, which could write it
  // from a renewed session after the flag vanished. The step's end writes
  // the node in any case.
  if (node.dirty && !persist) Hold(&instance);
  if (written != nullptr) *written = w;
  return node.progress.steps_size() - 1;
}

Status Journal::WriteInstance(const InstanceAddress& instance) {
  Node& node = NodeFor(instance);
  std::lock_guard<std::mutex> l(node.mu);
  node.dirty = true;
  Status w = WriteInstanceLocked(instance, node);
  if (node.dirty) Hold(&instance);
  return w;
}

Status Journal::WriteInstanceInSession(const InstanceAddress& instance,
                                       int64_t session_id) {
  Node& node = NodeFor(instance);
  std::lock_guard<std::mutex> l(node.mu);
  node.progress.set_instance(instance.NodeName());
  const std::string path = paths::DeployInstanceNode(service_, id_, instance);
  const std::string json = ToJson(node.progress);
  RetryOptions options = CoordinatorRetry(std::min(retry_window_, kStepRetryWindow));
  options.bound_session = session_id;
  // A version conflict (an earlier attempt applied, its reply lost) fails
  // the write: COMMAND is then not run, the safe side.
  MultiResult m = Retry(retry_, options, [&] {
    std::vector<ZkOp> ops;
    ops.push_back(node.version < 0
                      ? ZkOp::Create(path, json, CreateMode::kPersistent, acl_)
                      : ZkOp::SetData(path, json, node.version));
    return session_->MultiInSessionSync(std::move(ops), session_id);
  });
  if (!m.status.ok() || m.results.size() != 1) {
    LOG(WARNING) << "cannot write journal " << path << " in session "
                 << session_id << ": " << m.status.ToString();
    return m.status.ok() ? Internal("unexpected multi reply") : m.status;
  }
  node.version = node.version < 0 ? 0 : m.results[0].stat.version;
  node.dirty = false;
  return Status::Ok();
}

void Journal::EndStep(const InstanceAddress& instance, int index,
                      StepVerdict verdict, const std::string& detail) {
  Node& node = NodeFor(instance);
  std::lock_guard<std::mutex> l(node.mu);
  if (index < 0 || index >= node.progress.steps_size()) return;
  auto* step = node.progress.mutable_steps(index);
  step->set_ended_at(NowRfc3339());
  step->set_verdict(WireString(verdict));
  if (!detail.empty()) step->set_detail(detail);
  node.dirty = true;
  Hold(&instance);
}

void Journal::SetStepProcess(const InstanceAddress& instance, int index,
                             const proto::DeployRecord::Step::Process& process) {
  Node& node = NodeFor(instance);
  std::lock_guard<std::mutex> l(node.mu);
  if (index < 0 || index >= node.progress.steps_size()) return;
  *node.progress.mutable_steps(index)->mutable_process() = process;
  // Held like a step change, not written at once: a COMMAND that ends
  // within the flush delay costs no write of its own (its end replaces
  // this), and one that runs longer is on record kFlushDelay after it
  // started. A coordinator killed inside that first kFlushDelay leaves no
  // process, and `rollout --resume` then asks to be told that COMMAND
  // ended (or to run it again) instead of guessing.
  node.dirty = true;
  Hold(&instance);
}

void Journal::SetInstanceOutcome(const InstanceAddress& instance,
                                 InstanceOutcome outcome_value) {
  const bool final = outcome_value != InstanceOutcome::kPending &&
                     outcome_value != InstanceOutcome::kRunning &&
                     outcome_value != InstanceOutcome::kReverting;
  const std::string outcome = WireString(outcome_value);
  Node& node = NodeFor(instance);
  std::lock_guard<std::mutex> nl(node.mu);
  node.progress.set_instance(instance.NodeName());
  node.progress.set_outcome(outcome);
  node.dirty = true;
  {
    std::lock_guard<std::mutex> l(mu_);
    RecordEntryLocked(instance)->set_outcome(outcome);
    record_dirty_ = true;
  }
  if (final) (void)WriteInstanceLocked(instance, node);
  if (node.dirty) Hold(&instance);
  std::lock_guard<std::mutex> l(mu_);
  if (record_dirty_) Hold(nullptr);
}

Status Journal::Finish(RunOutcome outcome, const std::string& detail) {
  FlushAll();
  std::lock_guard<std::mutex> l(mu_);
  record_.set_outcome(WireString(outcome));
  record_.set_detail(detail);
  record_.set_ended_at(NowRfc3339());
  return WriteRecordLocked(retry_window_);
}

namespace {

template <typename State>
Status CheckState(std::string_view word, std::string_view path,
                  const std::string& field) {
  auto parsed = Parse<State>(word);
  if (parsed.ok()) return Status::Ok();
  return InvalidArgument("journal " + std::string(path) + ": " + field + ": " +
                         parsed.status().message());
}

template <typename State>
State Checked(std::string_view word) {
  auto parsed = Parse<State>(word);
  CHECK(parsed.ok()) << parsed.status().message()
                     << " in a journal that was checked";
  return *parsed;
}

}  // namespace

Status CheckJournalStates(const proto::DeployRecord::InstanceProgress& progress,
                          std::string_view path) {
  const std::string who = "instance " + QuoteForMessage(progress.instance());
  ZKROLL_RETURN_IF_ERROR(
      CheckState<InstanceOutcome>(progress.outcome(), path, who + " outcome"));
  for (const auto& step : progress.steps()) {
    ZKROLL_RETURN_IF_ERROR(CheckState<StepVerdict>(
        step.verdict(), path,
        who + " step " + QuoteForMessage(step.name()) + " verdict"));
  }
  return Status::Ok();
}

Status CheckJournalStates(const proto::DeployRecord& record,
                          std::string_view path) {
  ZKROLL_RETURN_IF_ERROR(
      CheckState<RunOutcome>(record.outcome(), path, "outcome"));
  for (const auto& inst : record.instances()) {
    ZKROLL_RETURN_IF_ERROR(CheckJournalStates(inst, path));
  }
  return Status::Ok();
}

RunOutcome OutcomeOf(const proto::DeployRecord& record) {
  return Checked<RunOutcome>(record.outcome());
}
InstanceOutcome OutcomeOf(
    const proto::DeployRecord::InstanceProgress& progress) {
  return Checked<InstanceOutcome>(progress.outcome());
}
StepVerdict VerdictOf(const proto::DeployRecord::Step& step) {
  return Checked<StepVerdict>(step.verdict());
}

Result<proto::DeployRecord> ReadJournal(ZkSession* session,
                                        const ServiceName& service,
                                        const DeployId& id, bool with_steps) {
  const std::string path = paths::DeployNode(service, id);
  auto data = session->GetSync(path);
  if (!data.ok()) return data.status();
  auto record = ParsePayload<proto::DeployRecord>(data->data, path);
  if (!record.ok()) return record;
  ZKROLL_RETURN_IF_ERROR(CheckJournalStates(*record, path));
  if (!with_steps) return record;
  for (auto& inst : *record->mutable_instances()) {
    auto addr = InstanceAddress::ParseNodeName(inst.instance());
    if (!addr.ok()) continue;
    const std::string child = paths::DeployInstanceNode(service, id, *addr);
    auto steps = session->GetSync(child);
    if (!steps.ok()) continue;  // instance never started
    auto progress =
        ParsePayload<proto::DeployRecord::InstanceProgress>(steps->data, child);
    Status states = progress.ok() ? CheckJournalStates(*progress, child)
                                  : progress.status();
    if (!states.ok()) {
      LOG(WARNING) << states.ToString();
      continue;
    }
    *inst.mutable_steps() = progress->steps();
  }
  return record;
}

Result<std::vector<DeployId>> ListJournals(ZkSession* session,
                                           const ServiceName& service) {
  auto children = session->GetChildrenSync(paths::DeployDir(service));
  if (!children.ok()) {
    if (children.status().code() == StatusCode::kNotFound) {
      return std::vector<DeployId>{};
    }
    return children.status();
  }
  std::vector<DeployId> ids;
  for (const std::string& name : children->names) {
    auto id = DeployId::Parse(name);
    if (id.ok()) ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end(), [](const DeployId& a, const DeployId& b) {
    return a.str() < b.str();
  });
  return ids;
}

}  // namespace zkroll::coordinator
