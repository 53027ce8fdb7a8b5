#include "tests/coordinator/coordinator_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include "tests/support/files.h"
#include "tests/support/wait.h"

namespace zkroll::testing {

Handshake::Handshake(const TempDir& dir, const std::string& name)
    : marker_(dir.File(name + ".started")), fifo_(dir.File(name + ".fifo")) {
  ::mkfifo(fifo_.c_str(), 0600);
}

std::string Handshake::Snippet() const {
  // The marker appears whole (renamed into place), so a reader never sees
  // it without the pid. COMMAND runs in a process group of its own, led by
  // this shell.
  return "echo $$ > '" + marker_ + ".tmp'; mv '" + marker_ + ".tmp' '" +
         marker_ + "'; read line < '" + fifo_ + "'";
}

Handshake::~Handshake() {
  std::ifstream in(marker_);
  pid_t pid = 0;
  if (!(in >> pid) || pid <= 1) return;
  // Only while that pid is still our shell blocked on this FIFO, not a
  // process that got the pid after the shell exited.
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  std::string text((std::istreambuf_iterator<char>(cmdline)),
                   std::istreambuf_iterator<char>());
  if (text.find(fifo_) == std::string::npos) return;
  ::kill(-pid, SIGKILL);
}

bool Handshake::Started() const { return ::access(marker_.c_str(), F_OK) == 0; }

bool Handshake::WaitStarted(milliseconds deadline) const {
  return WaitFor([&] { return Started(); }, deadline);
}

bool Handshake::Release() {
  int fd = -1;
  // O_NONBLOCK: fails with ENXIO until the command has the FIFO open for
  // reading, instead of blocking the test forever if it never does.
  bool opened = WaitFor(
      [&] {
        fd = ::open(fifo_.c_str(), O_WRONLY | O_NONBLOCK);
        return fd >= 0;
      },
      milliseconds(10000));
  if (!opened) return false;
  ssize_t n = ::write(fd, "go\n", 3);
  ::close(fd);
  return n == 3;
}

void CoordinatorTest::SetUp() {
  ZooKeeperTest::SetUp();
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "-" + info->name();
  std::replace_if(
      name.begin(), name.end(),
      [](char c) {
        return !(isalnum(static_cast<unsigned char>(c)) || c == '-');
      },
      '-');
  svc_ = name.substr(0, 60);
  zk_ = Connect();
}

void CoordinatorTest::TearDown() {
  for (auto& c : children_) {
    c->Signal(SIGKILL);
    c->Wait(milliseconds(5000));
  }
  if (HasFailure()) {
    for (size_t i = 0; i < children_.size(); ++i) {
      std::cerr << "---- log of child " << i << " (" << children_[i]->log_path()
                << ")\n"
                << children_[i]->Output() << "\n";
    }
  }
  children_.clear();
  zk_.reset();
}

RunResult CoordinatorTest::Zkroll(std::vector<std::string> args,
                                  milliseconds timeout, bool with_zk) {
  std::vector<std::string> argv = {ZKROLL_COORDINATOR_BIN};
  if (with_zk) {
    argv.push_back("--zk");
    argv.push_back(connect_string());
  }
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = RunCommand(argv, timeout);
  return r;
}

std::vector<std::string> CoordinatorTest::Deploy(
    int port, std::vector<std::string> extra,
    std::vector<std::string> command) {
  std::vector<std::pair<std::string, std::string>> opts = {
      {"--drain-wait", "0s"},
      {"--health-interval", "100ms"},
      {"--health-timeout", "500ms"},
      {"--register-timeout", "20s"},
      {"--session-timeout", "4s"}};
  std::vector<std::string> flags;
  for (size_t i = 0; i < extra.size(); ++i) {
    bool has_value = i + 1 < extra.size() && extra[i + 1].rfind("--", 0) != 0;
    if (!has_value) {
      flags.push_back(extra[i]);
      continue;
    }
    bool replaced = false;
    for (auto& [k, v] : opts) {
      if (k == extra[i]) {
        v = extra[i + 1];
        replaced = true;
      }
    }
    if (!replaced) opts.emplace_back(extra[i], extra[i + 1]);
    ++i;
  }
  std::vector<std::string> args = {"deploy", "--service", svc_, "--instance",
                                   Addr(port)};
  for (const auto& [k, v] : opts) {
    args.push_back(k);
    args.push_back(v);
  }
  args.insert(args.end(), flags.begin(), flags.end());
  args.push_back("--");
  args.insert(args.end(), command.begin(), command.end());
  return args;
}

ChildProcess* CoordinatorTest::StartZkroll(std::vector<std::string> args) {
  std::vector<std::string> argv = {ZKROLL_COORDINATOR_BIN, "--zk",
                                   connect_string()};
  argv.insert(argv.end(), args.begin(), args.end());
  children_.push_back(std::make_unique<ChildProcess>());
  ChildProcess* p = children_.back().get();
  Status s = p->Start(
      argv, dir_.File("zkroll-" + std::to_string(children_.size()) + ".log"));
  EXPECT_TRUE(s.ok()) << s.ToString();
  return p;
}

ChildProcess* CoordinatorTest::StartAgent(
    const std::string& host, const std::vector<std::string>& instances,
    std::vector<std::string> extra) {
  std::vector<std::string> argv = {ZKROLL_AGENT_BIN,
                                   "--zk",
                                   connect_string(),
                                   "--metrics-listen",
                                   "127.0.0.1:0",
                                   "--host",
                                   host,
                                   "--check",
                                   "tcp",
                                   "--interval",
                                   "100ms",
                                   "--timeout",
                                   "200ms",
                                   "--rise",
                                   "1",
                                   "--fall",
                                   "1",
                                   "--session-timeout",
                                   "2s",
                                   "--resync",
                                   "1s"};
  for (const auto& i : instances) {
    argv.push_back("--instance");
    argv.push_back(i);
  }
  // An extra "--flag value" replaces the default of the same flag (the
  // agent refuses a flag given twice).
  for (size_t i = 0; i + 1 < extra.size(); ++i) {
    for (size_t k = 1; k + 1 < argv.size(); ++k) {
      if (argv[k] == extra[i] && extra[i] != "--instance") {
        argv[k + 1] = extra[i + 1];
        extra.erase(extra.begin() + static_cast<long>(i),
                    extra.begin() + static_cast<long>(i) + 2);
        --i;
        break;
      }
    }
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  children_.push_back(std::make_unique<ChildProcess>());
  ChildProcess* p = children_.back().get();
  std::string log = dir_.File("agent-" + host + "-" +
                              std::to_string(children_.size()) + ".log");
  agent_logs_.push_back(log);
  Status s = p->Start(argv, log);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return p;
}

std::string CoordinatorTest::AgentLogs() const {
  std::string out;
  for (const auto& l : agent_logs_) out += "---- " + l + "\n" + ReadFile(l);
  return out;
}

std::string CoordinatorTest::InstancePath(int port) const {
  return paths::InstanceNode(*ServiceName::Parse(svc_),
                             *InstanceAddress::FromParts("127.0.0.1", port));
}

std::string CoordinatorTest::FlagPath(int port) const {
  return paths::PauseFlagNode(*ServiceName::Parse(svc_),
                              *InstanceAddress::FromParts("127.0.0.1", port));
}

bool CoordinatorTest::Exists(const std::string& path) {
  auto r = zk_->ExistsSync(path);
  return r.ok() && r->has_value();
}

int64_t CoordinatorTest::EphemeralOwner(const std::string& path) {
  auto node = Get(path);
  return node ? node->stat.ephemeral_owner : 0;
}

std::optional<int> CoordinatorTest::GrantedSessionTimeoutMs(int64_t id) {
  // One line per connection: "... sid=0x<hex>,...,to=<ms>,...". The server
  // writes the id with Long.toHexString: lowercase, no leading zeros.
  std::ostringstream hex;
  hex << "sid=0x" << std::hex << static_cast<uint64_t>(id) << ",";
  std::istringstream lines(FourLetterWord(server()->port(), "cons"));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find(hex.str()) == std::string::npos) continue;
    size_t to = line.find(",to=");
    if (to == std::string::npos) return std::nullopt;
    return std::atoi(line.c_str() + to + 4);
  }
  return std::nullopt;
}

std::optional<NodeData> CoordinatorTest::Get(const std::string& path) {
  auto r = zk_->GetSync(path);
  if (!r.ok()) return std::nullopt;
  return *r;
}

bool CoordinatorTest::AgentDeclares(const std::string& host, int port) {
  const std::string path = std::string(paths::kAgentsRoot) + "/" + host;
  auto d = Get(path);
  if (!d) return false;
  auto rec = ParsePayload<proto::AgentRecord>(d->data, path);
  if (!rec.ok()) return false;
  for (const auto& i : rec->instances()) {
    if (i.service() == svc_ && i.port() == static_cast<uint32_t>(port)) {
      return true;
    }
  }
  return false;
}

std::optional<proto::PauseFlag> CoordinatorTest::Flag(int port) {
  auto d = Get(FlagPath(port));
  if (!d) return std::nullopt;
  auto f = ParsePayload<proto::PauseFlag>(d->data, FlagPath(port));
  if (!f.ok()) return std::nullopt;
  return *f;
}

std::vector<std::string> CoordinatorTest::Children(const std::string& path) {
  auto r = zk_->GetChildrenSync(path);
  if (!r.ok()) return {};
  return r->names;
}

std::optional<proto::DeployRecord> CoordinatorTest::LastJournal() {
  const std::string dir = paths::DeployDir(*ServiceName::Parse(svc_));
  auto ids = Children(dir);
  if (ids.empty()) return std::nullopt;
  std::sort(ids.begin(), ids.end());
  const std::string path = dir + "/" + ids.back();
  auto d = Get(path);
  if (!d) return std::nullopt;
  auto rec = ParsePayload<proto::DeployRecord>(d->data, path);
  if (!rec.ok()) return std::nullopt;
  for (auto& inst : *rec->mutable_instances()) {
    auto steps = Get(path + "/" + inst.instance());
    if (!steps) continue;
    auto p =
        ParsePayload<proto::DeployRecord::InstanceProgress>(steps->data, path);
    if (p.ok()) *inst.mutable_steps() = p->steps();
  }
  return *rec;
}

void CoordinatorTest::Declare(ZkSession* owner, const std::string& host,
                              const std::vector<int>& ports) {
  proto::AgentRecord rec;
  rec.set_host(host);
  rec.set_pid(::getpid());
  for (int port : ports) {
    auto* i = rec.add_instances();
    i->set_service(svc_);
    i->set_ip("127.0.0.1");
    i->set_port(static_cast<uint32_t>(port));
    i->set_state("registered");
    i->set_healthy(true);
  }
  ASSERT_TRUE(owner->EnsurePathSync(paths::kAgentsRoot, OpenAcl()).ok());
  auto r = owner->CreateSync(std::string(paths::kAgentsRoot) + "/" + host,
                             ToJson(rec), CreateMode::kEphemeral, OpenAcl());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

void CoordinatorTest::Register(ZkSession* owner, int port) {
  proto::InstanceRecord rec;
  rec.set_service(svc_);
  rec.set_ip("127.0.0.1");
  rec.set_port(static_cast<uint32_t>(port));
  rec.set_host("fake-agent");
  ASSERT_TRUE(owner
                  ->EnsurePathSync(paths::ServiceDir(*ServiceName::Parse(svc_)),
                                   OpenAcl())
                  .ok());
  auto r = owner->CreateSync(InstancePath(port), ToJson(rec),
                             CreateMode::kEphemeral, OpenAcl());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

std::vector<std::string> StepNames(const proto::DeployRecord& rec,
                                   int instance) {
  std::vector<std::string> out;
  if (rec.instances_size() <= instance) return out;
  for (const auto& s : rec.instances(instance).steps()) {
    out.push_back(s.name() + ":" + s.verdict());
  }
  return out;
}

}  // namespace zkroll::testing
