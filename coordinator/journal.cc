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
      acl_(std::move(acl)),
      service_(std::move(service)),
      id_(std::move(id)),
      path_(std::move(path)),
      record_(std::move(record)),
      version_(version),
      retry_window_(retry_window) {}

Result<std::unique_ptr<Journal>> Journal::Start(ZkSession* session,
                                                const AclList& acl,
                                                const ServiceName& service,
                                                proto::DeployRecord record,
                                                Millis retry_window) {
  auto id = DeployId::Parse(record.deploy_id());
  if (!id.ok()) return id.status();
  record.set_outcome("running");
  if (record.started_at().empty()) record.set_started_at(NowRfc3339());
  for (auto& inst : *record.mutable_instances()) {
    if (inst.outcome().empty()) inst.set_outcome("pending");
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
  inst->set_outcome("pending");
  return inst;
}

Status Journal::WriteRecordLocked(Millis window) {
  const std::string json = ToJson(record_);
  bool transient = false;  // a failed attempt may still have applied
  auto r = RetryTransient(session_, window, [&] {
    auto w = session_->SetSync(path_, json, version_);
    transient = transient || (!w.ok() && IsTransient(w.status()));
    return w;
  });
  if (r.status().code() == StatusCode::kBadVersion) {
    if (!transient) {
      LOG(WARNING) << "journal " << path_
                   << " was changed by someone else; overwriting it";
    }
    r = RetryTransient(session_, window,
                       [&] { return session_->SetSync(path_, json, -1); });
  }
  if (!r.ok()) {
    LOG(WARNING) << "cannot update journal " << path_ << ": "
                 << r.status().ToString() << " (retried at the next update)";
    return r.status();
  }
  version_ = r->version;
  return Status::Ok();
}

Status Journal::WriteInstanceLocked(const InstanceAddress& instance,
                                    Node& node) {
  const std::string path = paths::DeployInstanceNode(service_, id_, instance);
  const std::string json = ToJson(node.progress);
  const Millis window = std::min(retry_window_, kStepRetryWindow);
  bool transient = false;
  if (node.version < 0) {
    auto created = RetryTransient(session_, window, [&] {
      auto c = session_->CreateSync(path, json, CreateMode::kPersistent, acl_);
      transient = transient || (!c.ok() && IsTransient(c.status()));
      return c;
    });
    if (created.ok()) {
      node.version = 0;
      return Status::Ok();
    }
    if (created.status().code() != StatusCode::kAlreadyExists) {
      LOG(WARNING) << "cannot write journal " << path << ": "
                   << created.status().ToString();
      return created.status();
    }
  }
  auto r = RetryTransient(session_, window, [&] {
    auto w = session_->SetSync(path, json, node.version);
    transient = transient || (!w.ok() && IsTransient(w.status()));
    return w;
  });
  if (r.status().code() == StatusCode::kBadVersion ||
      (node.version < 0 && !r.ok())) {
    if (!transient && node.version >= 0) {
      LOG(WARNING) << "journal " << path
                   << " was changed by someone else; overwriting it";
    }
    r = RetryTransient(session_, window,
                       [&] { return session_->SetSync(path, json, -1); });
  }
  if (!r.ok()) {
    LOG(WARNING) << "cannot update journal " << path << ": "
                 << r.status().ToString() << " (retried at the next update)";
    return r.status();
  }
  node.version = r->version;
  return Status::Ok();
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
  node.progress.set_outcome("running");
  auto* step = node.progress.add_steps();
  step->set_name(name);
  step->set_started_at(NowRfc3339());
  step->set_verdict("running");
  step->set_detail(detail);
  Status w = persist ? WriteInstanceLocked(instance, node) : Status::Ok();
  if (written != nullptr) *written = w;
  return node.progress.steps_size() - 1;
}

Status Journal::WriteInstance(const InstanceAddress& instance) {
  Node& node = NodeFor(instance);
  std::lock_guard<std::mutex> l(node.mu);
  node.progress.set_instance(instance.NodeName());
  return WriteInstanceLocked(instance, node);
}

void Journal::EndStep(const InstanceAddress& instance, int index,
                      const std::string& verdict, const std::string& detail) {
  Node& node = NodeFor(instance);
  std::lock_guard<std::mutex> l(node.mu);
  if (index < 0 || index >= node.progress.steps_size()) return;
  auto* step = node.progress.mutable_steps(index);
  step->set_ended_at(NowRfc3339());
  step->set_verdict(verdict);
  if (!detail.empty()) step->set_detail(detail);
  (void)WriteInstanceLocked(instance, node);
}

void Journal::SetInstanceOutcome(const InstanceAddress& instance,
                                 const std::string& outcome) {
  Node& node = NodeFor(instance);
  {
    std::lock_guard<std::mutex> l(node.mu);
    node.progress.set_instance(instance.NodeName());
    node.progress.set_outcome(outcome);
    (void)WriteInstanceLocked(instance, node);
  }
  std::lock_guard<std::mutex> l(mu_);
  RecordEntryLocked(instance)->set_outcome(outcome);
  (void)WriteRecordLocked(std::min(retry_window_, kStepRetryWindow));
}

Status Journal::Finish(const std::string& outcome, const std::string& detail) {
  std::lock_guard<std::mutex> l(mu_);
  record_.set_outcome(outcome);
  record_.set_detail(detail);
  record_.set_ended_at(NowRfc3339());
  return WriteRecordLocked(retry_window_);
}

Result<proto::DeployRecord> ReadJournal(ZkSession* session,
                                        const ServiceName& service,
                                        const DeployId& id, bool with_steps) {
  const std::string path = paths::DeployNode(service, id);
  auto data = session->GetSync(path);
  if (!data.ok()) return data.status();
  auto record = ParsePayload<proto::DeployRecord>(data->data, path);
  if (!record.ok() || !with_steps) return record;
  for (auto& inst : *record->mutable_instances()) {
    auto addr = InstanceAddress::ParseNodeName(inst.instance());
    if (!addr.ok()) continue;
    const std::string child = paths::DeployInstanceNode(service, id, *addr);
    auto steps = session->GetSync(child);
    if (!steps.ok()) continue;  // instance never started
    auto progress =
        ParsePayload<proto::DeployRecord::InstanceProgress>(steps->data, child);
    if (!progress.ok()) {
      LOG(WARNING) << progress.status().ToString();
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
