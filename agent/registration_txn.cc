#include "agent/registration_txn.h"

#include <glog/logging.h>

namespace zkroll::agent {

RegistrationTxn RegistrationTxn::Build(
    const ServiceName& service, const InstanceAddress& address,
    const std::string& record_json, const registry::GuardVersion& pause_guard,
    std::optional<int32_t> stale_version, const AclList& instance_acl) {
  RegistrationTxn txn;
  txn.ops_ = registry::RegisterOps(service, address, record_json, pause_guard,
                                   stale_version, instance_acl);
  // registry::RegisterOps uses each kind of operation once (registry.h).
  for (const ZkOp& op : txn.ops_) {
    switch (op.kind) {
      case ZkOp::Kind::kCheck:
        txn.names_.push_back(Op::kPauseGuard);
        break;
      case ZkOp::Kind::kDelete:
        txn.names_.push_back(Op::kReplacePrevious);
        break;
      case ZkOp::Kind::kCreate:
        txn.names_.push_back(Op::kCreate);
        break;
      case ZkOp::Kind::kSetData:
        txn.names_.push_back(Op::kRegistryGuard);
        break;
    }
  }
  return txn;
}

std::optional<RegistrationTxn::Op> RegistrationTxn::Failed(
    const MultiResult& r) const {
  if (r.status.ok() || r.failed_op < 0 ||
      r.failed_op >= static_cast<int>(names_.size())) {
    return std::nullopt;
  }
  return names_[r.failed_op];
}

const char* RegistrationOpName(RegistrationTxn::Op op) {
  switch (op) {
    case RegistrationTxn::Op::kPauseGuard:
      return "pause guard";
    case RegistrationTxn::Op::kReplacePrevious:
      return "replace previous node";
    case RegistrationTxn::Op::kCreate:
      return "create";
    case RegistrationTxn::Op::kRegistryGuard:
      return "registry guard";
  }
  return "?";
}

}  // namespace zkroll::agent
