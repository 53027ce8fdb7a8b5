// Read-only views for operators: `zkroll status` and `zkroll history`.
//
// status lists every instance of a service that any source knows (declared
// by an agent, registered, or paused) with: registered or not, the pause
// (who, why, since, until), the agents that declare it and whether they are
// alive, their view of its health, and the last deploy that touched it.
// history lists the journals of a service (journal.h), newest first, or one
// journal with every step.
//
// Output goes through the Reporter: text blocks, or one JSON object per
// line with --output json. Expired pause flags seen by status are deleted
// (and said so), as for every coordinator command.
//
// Errors: ZooKeeper failures; NotFound for an unknown deploy id.
#ifndef ZKROLL_COORDINATOR_STATUS_H_
#define ZKROLL_COORDINATOR_STATUS_H_

#include "common/names.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "coordinator/reporter.h"

namespace zkroll::coordinator {

Status PrintServiceStatus(ZkSession* session, const ServiceName& service,
                          Reporter* reporter);

// The `limit` most recent journals, newest first.
Status PrintHistory(ZkSession* session, const ServiceName& service, int limit,
                    Reporter* reporter);

// One journal with its steps.
Status PrintDeploy(ZkSession* session, const ServiceName& service,
                   const DeployId& id, Reporter* reporter);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_STATUS_H_
