#include "agent/registration.h"

#include <glog/logging.h>

#include "agent/metrics.h"
#include "common/payload.h"
#include "common/paths.h"
#include "zkroll.pb.h"

namespace zkroll::agent {

std::shared_ptr<Registration> Registration::Create(Env env, InstanceId id,
                                                   Owner owner) {
  return std::shared_ptr<Registration>(
      new Registration(std::move(env), std::move(id), std::move(owner)));
}

Registration::Registration(Env env, InstanceId id, Owner owner)
    : env_(std::move(env)),
      id_(std::move(id)),
      owner_(std::move(owner)),
      node_(paths::InstanceNode(id_.service, id_.address)) {}

void Registration::Attach(Owner owner) {
  owner_ = std::move(owner);
  retired_ = false;
  refused_for_good_ = false;
  conflict_logged_ = false;
}

void Registration::Retire() {
  retired_ = true;
  owner_ = Owner{};
  awaiting_pause_view_ = false;
  Reconcile();
}

void Registration::Published() {
  // Stopped: the agent is shutting down or gone; retired: no owner.
  if (!stopped_ && owner_.published_changed) owner_.published_changed();
}

void Registration::OpDone() {
  if (dirty_ || retired_) Reconcile();
}

void Registration::Reconcile() {
  if (stopped_) return;
  if (op_in_flight_) {
    dirty_ = true;
    return;
  }
  if (!env_.session->connected()) return;
  if (retired_) {
    // No pause view or ACL needed to learn or to delete.
    if (outcome_unknown_) {
      Learn();
    } else if (registered_) {
      Deregister("");
    }
    return;
  }
  if (!env_.tree->acls_known()) return;
  const RegistrationDesire d = owner_.desire();
  // Until the pause flags are known we neither register nor deregister.
  if (!d.known) return;
  if (outcome_unknown_) {
    Learn();
    return;
  }
  if (d.want && !registered_ && !awaiting_pause_view_) {
    Register(d.guard);
  } else if (!d.want && registered_) {
    Deregister(d.why_not);
  }
}

void Registration::Register(const registry::GuardVersion& guard) {
  op_in_flight_ = true;
  dirty_ = false;
  auto txn = std::make_shared<RegistrationTxn>(RegistrationTxn::Build(
      id_.service, id_.address, owner_.record_json(), guard, replace_version_,
      env_.tree->services_acl()));
  const bool replacing = replace_version_.has_value();
  env_.session->Multi(
      txn->TakeOps(),
      [self = shared_from_this(), replacing, txn](MultiResult r) {
        self->op_in_flight_ = false;
        if (self->stopped_) return;
        if (r.status.ok()) {
          if (self->env_.metrics) self->env_.metrics->OnRegistrationWritten();
          self->registered_ = true;
          self->replace_version_.reset();
          self->conflict_logged_ = false;
          LOG(INFO) << "registered " << self->id_.ToString()
                    << (replacing
                            ? " (replaced the node of our previous session)"
                            : "")
                    << (self->retired_ ? " (no longer managed; removing it)"
                                       : "");
          self->Check();
          self->Published();
        } else {
          self->OnRegisterFailed(r, txn->Failed(r));
        }
        self->OpDone();
      });
}

void Registration::OnRegisterFailed(
    const MultiResult& r, std::optional<RegistrationTxn::Op> failed) {
  using Op = RegistrationTxn::Op;
  const std::string id = id_.ToString();
  const StatusCode code = r.status.code();
  if (retired_) {
    // Refused: nothing was created. Lost: learn it (Reconcile).
    if (r.status.IsRetryable()) outcome_unknown_ = true;
    return;
  }
  if (failed == Op::kPauseGuard) {
    // The guard moved: a pause was made (or lifted) after we looked.
    LOG(INFO) << "registration of " << id
              << " refused by the pause guard (" << r.status.message()
              << "); re-reading pause flags";
    owner_.refresh_pause();
    return;
  }
  if (failed == Op::kRegistryGuard && code == StatusCode::kNotFound) {
    // /services/<service> is missing (deleted by hand, or never made).
    owner_.ensure_service_dir();
    return;
  }
  if (code == StatusCode::kAlreadyExists) {
    env_.session->Get(node_, nullptr, [self = shared_from_this(),
                                       id](Result<NodeData> d) {
      if (self->stopped_ || self->retired_) return;
      if (!d.ok()) {
        self->Reconcile();  // gone meanwhile: try again
        return;
      }
      if (d->stat.ephemeral_owner == self->env_.session->session_id()) {
        self->registered_ = true;
        self->Check();
        self->Published();
        return;
      }
      auto rec = ParsePayload<proto::InstanceRecord>(d->data, self->node_);
      if (rec.ok() && rec->host() == self->env_.host) {
        // Left by our previous session; replace it in one step.
        self->replace_version_ = d->stat.version;
        self->Reconcile();
        return;
      }
      self->refused_for_good_ = true;
      self->owner_.settled_changed();
      if (!self->conflict_logged_) {
        self->conflict_logged_ = true;
        LOG(ERROR) << self->node_ << " is registered by another owner ("
                   << (rec.ok() ? "host " + rec->host()
                                : "unreadable record: " + rec.status().message())
                   << ", session 0x" << std::hex << d->stat.ephemeral_owner
                   << std::dec << "); not touching it. Is " << id
                   << " declared on two hosts?";
      }
    });
    return;
  }
  if (replace_version_ &&
      (code == StatusCode::kNotFound || code == StatusCode::kBadVersion)) {
    replace_version_.reset();  // the old node changed or left
    Reconcile();
    return;
  }
  LOG(WARNING) << "could not register " << id << ": " << r.status.ToString()
               << (r.status.IsRetryable() ? " (will retry)" : "");
  if (r.status.IsRetryable()) outcome_unknown_ = true;
  if (code == StatusCode::kPermissionDenied) {
    // Our identity may not write there: no retry helps, so start-up must
    // not wait for this instance (the error above says why).
    refused_for_good_ = true;
    owner_.settled_changed();
  }
}

void Registration::Learn() {
  op_in_flight_ = true;
  dirty_ = false;
  // Sync first: after a connection loss the client moves to another server,
  // which need not have applied the registration the leader did. A read
  // there would say "no node", and an instance that then turns unhealthy
  // would stay registered.
  env_.session->Sync(node_, [self = shared_from_this()](Status synced) {
    if (!synced.ok() || self->stopped_) {
      // Still unknown; the next check result or reconnect asks again.
      self->op_in_flight_ = false;
      return;
    }
    self->ReadOutcome();
  });
}

void Registration::ReadOutcome() {
  env_.session->Get(node_, nullptr, [self = shared_from_this()](
                                        Result<NodeData> d) {
    self->op_in_flight_ = false;
    if (self->stopped_) return;
    if (!d.ok() && d.status().code() != StatusCode::kNotFound) {
      // Still unknown; the next check result or reconnect asks again.
      return;
    }
    self->outcome_unknown_ = false;
    self->registered_ =
        d.ok() && d->stat.ephemeral_owner == self->env_.session->session_id();
    LOG(INFO) << "registration of " << self->id_.ToString()
              << " whose reply was lost: "
              << (self->registered_ ? "it was applied" : "it was not applied");
    if (self->registered_) {
      self->Check();
      self->Published();
    }
    self->Reconcile();
  });
}

void Registration::Deregister(const std::string& why) {
  op_in_flight_ = true;
  dirty_ = false;
  env_.session->Delete(node_, -1, [self = shared_from_this(), why](Status s) {
    self->op_in_flight_ = false;
    if (s.ok() || s.code() == StatusCode::kNotFound) {
      if (self->env_.metrics && s.ok()) {
        self->env_.metrics->OnDeregistrationWritten();
      }
      self->registered_ = false;
      LOG(INFO) << "deregistered " << self->id_.ToString()
                << (why.empty() ? "" : " (" + why + ")");
      self->Published();
    } else {
      LOG(WARNING) << "could not deregister " << self->id_.ToString() << ": "
                   << s.ToString() << " (will retry)";
    }
    if (self->dirty_) self->Reconcile();
  });
}

void Registration::Check() {
  if (!registered_ || op_in_flight_ || stopped_ || retired_ ||
      !env_.session->connected()) {
    return;
  }
  ZkSession::WatchCallback watcher;
  const bool arming = !watch_armed_;
  if (arming) {
    watch_armed_ = true;
    // Fires once: on the delete of our node (or on its re-creation, if it
    // was already gone when set). Events of an expired session are dropped
    // by ZkSession; the watch is re-armed by the read below.
    watcher = [self = shared_from_this()](const WatchEvent& e) {
      self->watch_armed_ = false;
      if (self->stopped_ || self->retired_) return;
      VLOG(1) << self->node_ << ": " << WatchEventTypeName(e.type);
      self->Check();
    };
  }
  env_.session->Exists(
      node_, std::move(watcher),
      [self = shared_from_this(), arming](Result<std::optional<NodeStat>> r) {
        if (!r.ok()) {
          // The watch was not set (connection trouble); the reconnect
          // calls us again.
          if (arming) self->watch_armed_ = false;
          return;
        }
        if (self->stopped_ || self->retired_ || !self->registered_ ||
            self->op_in_flight_) {
          return;
        }
        if (r->has_value() &&
            (*r)->ephemeral_owner == self->env_.session->session_id()) {
          return;  // still ours
        }
        // Deleted by someone else (an operator, or a pause whose multi
        // crossed our registration): register again through the guard, as
        // soon as the instance is healthy and unpaused.
        LOG(WARNING) << self->node_
                     << (r->has_value() ? " now belongs to another session"
                                        : " was deleted by someone else")
                     << "; registering again if healthy and not paused";
        self->registered_ = false;
        self->Published();
        // Usually a pause deleted it, whose flag's watch event may not have
        // reached us yet: a registration from the pause view we hold would
        // be refused by the guard, a transaction for nothing. Read the
        // flags first; their update reconciles.
        self->awaiting_pause_view_ = true;
        self->owner_.refresh_pause();
      });
}

void Registration::OnReconnected() {
  // A delete made while we were away may have fired nothing we saw.
  Check();
  Reconcile();
}

void Registration::OnExpired() {
  registered_ = false;
  outcome_unknown_ = false;  // ephemerals went with the session
  op_in_flight_ = false;
  replace_version_.reset();
  watch_armed_ = false;  // watches went with the session
}

}  // namespace zkroll::agent
