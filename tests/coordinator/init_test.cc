// `zkroll init` and the coordinator's ACL inheritance, against a real
// ZooKeeper server of its own (init re-ACLs the roots, which would change
// the ground under the other coordinator tests).
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/coordinator/coordinator_fixture.h"

namespace zkroll::testing {
namespace {

std::vector<std::string> AclKeys(const AclList& acl) {
  std::vector<std::string> out;
  for (const auto& e : acl) {
    out.push_back(e.scheme + ":" + e.id + ":" + std::to_string(e.perms));
  }
  std::sort(out.begin(), out.end());
  return out;
}

class InitTest : public CoordinatorTest {};

TEST_F(InitTest, InitSetsRootAclsAndCoordinatorNodesInheritThem) {
  const std::string admin = dir_.Write("admin", "admin:admin-pw\n", 0600);
  const std::string agent = dir_.Write("agent", "agent:agent-pw\n", 0600);
  const std::string coord = dir_.Write("coord", "coordinator:c-pw\n", 0600);

  RunResult missing = Zkroll({"--auth-file", admin, "init"});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("--agent-auth FILE or --agent-id"),
            std::string::npos)
      << missing.output;
  RunResult no_admin =
      Zkroll({"init", "--agent-auth", agent, "--coordinator-auth", coord});
  EXPECT_EQ(no_admin.exit_code, 2) << no_admin.output;
  EXPECT_NE(no_admin.output.find("--admin-auth"), std::string::npos)
      << no_admin.output;
  const std::string open_admin = dir_.Write("open-admin", "admin:admin-pw\n", 0644);
  RunResult leaky = Zkroll({"init", "--admin-auth", open_admin, "--agent-auth",
                            agent, "--coordinator-auth", coord});
  EXPECT_EQ(leaky.exit_code, 2) << leaky.output;
  EXPECT_EQ(leaky.output.find("admin-pw"), std::string::npos) << leaky.output;

  RunResult init = Zkroll({"--auth-file", admin, "init", "--agent-auth", agent,
                           "--coordinator-auth", coord});
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_NE(init.output.find("/pause"), std::string::npos) << init.output;
  // --admin-auth is init's own name for the admin credential.
  RunResult again = Zkroll({"init", "--admin-auth", admin, "--agent-auth",
                            agent, "--coordinator-auth", coord});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("nothing changed"), std::string::npos)
      << again.output;

  // A manual pause by the coordinator identity: its flag and the service's
  // pause directory carry /pause's ACL, so the admin keeps its rights.
  const int port = PickFreePort();
  RunResult p =
      Zkroll({"--auth-file", coord, "pause", "--service", svc_, "--instance",
              Addr(port), "--reason", "acl", "--ttl", "1h", "--force"});
  ASSERT_EQ(p.exit_code, 0) << p.output;
  auto root = zk_->GetAclSync(paths::kPauseRoot);
  auto flag = zk_->GetAclSync(FlagPath(port));
  ASSERT_TRUE(root.ok() && flag.ok());
  EXPECT_EQ(AclKeys(*flag), AclKeys(*root));
  EXPECT_GE(root->size(), 3u) << "world, coordinator and admin";
  // Anonymous sessions may read but not lift the pause.
  EXPECT_EQ(zk_->DeleteSync(FlagPath(port)).code(),
            StatusCode::kPermissionDenied);
  RunResult r = Zkroll({"--auth-file", coord, "resume", "--service", svc_,
                        "--instance", Addr(port)});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(Paused(port));
}

}  // namespace
}  // namespace zkroll::testing
