#include "coordinator/lock.h"

#include <glog/logging.h>

#include <algorithm>

#include "common/paths.h"
#include "common/payload.h"
#include "coordinator/connection.h"

namespace zkroll::coordinator {
namespace {

constexpr char kPrefix[] = "lock-";

// The sequence number of a lock node name, or -1 for foreign names.
int64_t Sequence(const std::string& name) {
  const std::string prefix = kPrefix;
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  std::string digits = name.substr(prefix.size());
  if (digits.empty() || digits.size() > 10) return -1;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace

std::string DescribeHolder(const proto::LockHolder& h) {
  std::string out =
      (h.by().empty() ? "unknown" : h.by()) + ", pid " +
      std::to_string(h.pid()) + ", since " +
      (h.has_since() ? FormatTimestamp(h.since(), true) : "unknown");
  if (!h.purpose().empty() || !h.deploy_id().empty()) {
    out += ", " + h.purpose() + " " + h.deploy_id();
  }
  return out;
}

Result<std::unique_ptr<ServiceLock>> ServiceLock::Acquire(
    ZkSession* session, const ServiceName& service,
    const proto::LockHolder& holder, const AclList& acl) {
  const std::string dir = paths::LockDir(service);
  ZKROLL_RETURN_IF_ERROR(session->EnsurePathSync(dir, acl));
  auto created = session->CreateSync(dir + "/" + kPrefix, ToJson(holder),
                                     CreateMode::kEphemeralSequential, acl);
  if (!created.ok()) return created.status();
  const std::string mine = *created;
  const int64_t my_seq = Sequence(mine.substr(dir.size() + 1));
  auto give_up = [&](Status s) -> Status {
    Status d = session->DeleteSync(mine);
    if (!d.ok() && d.code() != StatusCode::kNotFound) {
      LOG(WARNING) << "cannot delete " << mine << ": " << d.ToString()
                   << " (it goes with our session)";
    }
    return s;
  };

  // A lower node that vanishes while we look was released; look again.
  for (int round = 0; round < 20; ++round) {
    auto children = session->GetChildrenSync(dir);
    if (!children.ok()) return give_up(children.status());
    std::vector<std::pair<int64_t, std::string>> lower;
    for (const std::string& name : children->names) {
      int64_t seq = Sequence(name);
      if (seq >= 0 && seq < my_seq) lower.emplace_back(seq, name);
    }
    if (lower.empty()) {
      auto stat = session->ExistsSync(mine);
      if (!stat.ok()) return give_up(stat.status());
      if (!stat->has_value()) {
        return Aborted("our lock node " + mine +
                       " vanished right after it was created (session "
                       "expired?); try again");
      }
      return std::unique_ptr<ServiceLock>(
          new ServiceLock(session, mine, (*stat)->ephemeral_owner));
    }
    std::sort(lower.begin(), lower.end());
    const std::string holder_path = dir + "/" + lower.front().second;
    auto data = session->GetSync(holder_path);
    if (!data.ok()) {
      if (data.status().code() == StatusCode::kNotFound) continue;
      return give_up(data.status());
    }
    auto other = ParsePayload<proto::LockHolder>(data->data, holder_path);
    std::string who =
        other.ok() ? DescribeHolder(*other) : "an unreadable holder record";
    return give_up(FailedPrecondition(
        "service " + service.str() + " is locked by " + who + " (" +
        holder_path +
        "); wait for that deploy to finish, or stop it. A "
        "coordinator that died releases the lock within its session "
        "timeout."));
  }
  return give_up(
      Unavailable("the lock nodes under " + dir + " keep changing; try again"));
}

Result<std::optional<LockHolderView>> ReadLockHolder(
    ZkSession* session, const ServiceName& service) {
  const std::string dir = paths::LockDir(service);
  // A lowest node that vanishes while we look was released; look again.
  for (int round = 0; round < 20; ++round) {
    auto children = session->GetChildrenSync(dir);
    if (!children.ok()) {
      if (children.status().code() == StatusCode::kNotFound) {
        return std::optional<LockHolderView>();
      }
      return children.status();
    }
    int64_t lowest = -1;
    std::string name;
    for (const std::string& n : children->names) {
      int64_t seq = Sequence(n);
      if (seq >= 0 && (lowest < 0 || seq < lowest)) {
        lowest = seq;
        name = n;
      }
    }
    if (lowest < 0) return std::optional<LockHolderView>();
    LockHolderView view;
    view.path = dir + "/" + name;
    auto data = session->GetSync(view.path);
    if (!data.ok()) {
      if (data.status().code() == StatusCode::kNotFound) continue;
      return data.status();
    }
    auto holder = ParsePayload<proto::LockHolder>(data->data, view.path);
    if (holder.ok()) view.holder = *holder;
    return std::optional<LockHolderView>(std::move(view));
  }
  return Unavailable("the lock nodes under " + dir +
                     " keep changing; try again");
}

ServiceLock::~ServiceLock() {
  if (!released_) {
    Status s = Release();
    if (!s.ok()) LOG(WARNING) << s.ToString();
  }
}

Status ServiceLock::Release() {
  released_ = true;
  // After a session expiry the node is gone with the old session; the
  // renewed session sees that once it is connected.
  ZkRetryContext retry(session_);
  auto stat = Retry(retry, CoordinatorRetry(Millis(5000)),
                    [&] { return session_->ExistsSync(path_); });
  if (!stat.ok()) return stat.status().WithContext("releasing lock " + path_);
  if (!stat->has_value()) return Status::Ok();
  // Only delete the node of our own session: after an expiry the same
  // sequential name cannot come back, but stay strict anyway.
  if ((*stat)->ephemeral_owner != owner_) return Status::Ok();
  RetryOptions bound = CoordinatorRetry(Millis(5000));
  bound.bound_session = owner_;
  Status s = Retry(retry, bound, [&]() -> Status {
    if (session_->session_id() != owner_) return Status::Ok();  // gone with it
    return session_->DeleteInSessionSync(path_, (*stat)->version, owner_);
  });
  if (s.code() == StatusCode::kNotFound) return Status::Ok();
  return s.ok() ? s : s.WithContext("releasing lock " + path_);
}

Result<bool> ServiceLock::StillHeld() {
  if (session_->session_id() != owner_) return false;
  ZKROLL_RETURN_IF_ERROR(session_->SyncSync(path_));
  auto stat = session_->ExistsSync(path_);
  if (!stat.ok()) return stat.status();
  return stat->has_value() && (*stat)->ephemeral_owner == owner_ &&
         session_->session_id() == owner_;
}

}  // namespace zkroll::coordinator
