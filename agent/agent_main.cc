#include "agent/agent_main.h"

#include <glog/logging.h>
#include <pthread.h>
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>
#include <iostream>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/metrics.h"
#include "agent/metrics_server.h"
#include "agent/systemd_notify.h"
#include "common/version.h"

namespace zkroll::agent {
namespace po = boost::program_options;

namespace {

constexpr char kUsage[] = R"(zkroll-agent: registers this host's service instances in ZooKeeper while
they are healthy, and never while a deploy has paused them.

Usage:
  zkroll-agent --zk HOST:PORT[/chroot] [--config FILE] [--config-dir DIR]
               [--instance SERVICE@IP:PORT ...] [options]

Instances come from --config (INI: top-level agent keys and [instance.NAME]
sections), from every *.conf file in --config-dir, and from --instance
shortcuts (checked with the --check/--interval/... defaults below). See
docs/agent.md and scripts/agent.conf.sample.

Signals: SIGHUP reloads the configuration (a bad one is refused and the
running one kept); SIGTERM/SIGINT deregister every instance, close the
session and exit 0.

Exit codes: 0 clean shutdown; 2 bad flag or configuration; 1 other failure.

Options)";

}  // namespace

int AgentMain(int argc, char** argv) {
  // SIGHUP's default action kills the process, and systemd may send it (or
  // SIGTERM) at any time, so they are held pending from the first
  // instruction until Asio's handlers are installed below; threads started
  // meanwhile inherit the mask. A signal that arrived during start-up is
  // then delivered and queued by the signal_set, never lost or fatal.
  sigset_t held;
  sigemptyset(&held);
  sigaddset(&held, SIGHUP);
  sigaddset(&held, SIGTERM);
  sigaddset(&held, SIGINT);
  pthread_sigmask(SIG_BLOCK, &held, nullptr);

  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  CommandLine cl;
  po::options_description desc(kUsage);
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("version", "print the version and exit")
    ("zk", po::value<std::string>(),
     "ZooKeeper connect string, e.g. 10.0.0.1:2181,10.0.0.2:2181/zkroll-prod; "
     "the optional /chroot scopes every path (config key: zk)")
    ("host", po::value<std::string>(),
     "host id used for /agents/<host> and in instance records "
     "(default: the hostname; config key: host)")
    ("config", po::value<std::string>(), "agent config file (INI)")
    ("config-dir", po::value<std::string>(),
     "directory of per-instance *.conf files ([instance.NAME] sections)")
    ("instance", po::value<std::vector<std::string>>()->composing(),
     "SERVICE@IP:PORT to manage, e.g. level@192.168.1.10:9000 or "
     "level@[::1]:9000; repeatable")
    ("check", po::value<std::string>()->default_value("tcp"),
     "check for --instance: tcp, tcp:connect<200ms, http:/healthz, "
     "exec:/path/to/cmd args")
    ("interval", po::value<std::string>()->default_value("2s"),
     "check interval for --instance (jittered by +-10%)")
    ("timeout", po::value<std::string>()->default_value("1s"),
     "check timeout for --instance")
    ("rise", po::value<int>()->default_value(2),
     "consecutive passes before an --instance counts as healthy")
    ("fall", po::value<int>()->default_value(3),
     "consecutive failures before an --instance counts as unhealthy")
    ("session-timeout", po::value<std::string>(),
     "ZooKeeper session timeout (default 10s; config key: session_timeout)")
    ("resync", po::value<std::string>(),
     "slow periodic re-read of pause flags and registrations "
     "(default 30s; config key: resync)")
    ("auth-file", po::value<std::string>(),
     "file holding 'user:password' for ZooKeeper digest auth; must not be "
     "readable by group or others (config key: auth_file)")
    ("metrics-listen", po::value<std::string>(),
     "IP:PORT to serve Prometheus metrics on at /metrics (default "
     "127.0.0.1:9479; an empty value turns them off; config key: "
     "metrics_listen)");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "zkroll-agent: " << e.what()
              << "\nRun 'zkroll-agent --help' for the options.\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "zkroll-agent " << ZKROLL_VERSION_TEXT << "\n";
    return 0;
  }
  auto opt = [&](const char* k) -> std::optional<std::string> {
    if (vm.count(k)) return vm[k].as<std::string>();
    return std::nullopt;
  };
  cl.config_file = opt("config");
  cl.config_dir = opt("config-dir");
  cl.zk = opt("zk");
  cl.host = opt("host");
  cl.session_timeout = opt("session-timeout");
  cl.resync = opt("resync");
  cl.auth_file = opt("auth-file");
  cl.metrics_listen = opt("metrics-listen");
  if (vm.count("instance")) {
    cl.instances = vm["instance"].as<std::vector<std::string>>();
  }
  cl.check = vm["check"].as<std::string>();
  cl.interval = vm["interval"].as<std::string>();
  cl.timeout = vm["timeout"].as<std::string>();
  cl.rise = vm["rise"].as<int>();
  cl.fall = vm["fall"].as<int>();

  auto config = LoadConfig(cl);
  if (!config.ok()) {
    std::cerr << "zkroll-agent: " << config.status().message() << "\n";
    return 2;
  }
  std::vector<Credential> credentials;
  if (!config->auth_file.empty()) {
    auto cred = ReadCredentialFile(config->auth_file);
    if (!cred.ok()) {
      std::cerr << "zkroll-agent: " << cred.status().message() << "\n";
      return 2;
    }
    credentials.push_back(*cred);
  }

  boost::asio::io_context io;
  boost::asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  boost::asio::signal_set hup(io, SIGHUP);
  // Asio's handlers are in place: release the held signals. One that is
  // pending is delivered now and waits in its signal_set for async_wait.
  pthread_sigmask(SIG_UNBLOCK, &held, nullptr);

  // With metrics off nothing is counted at all.
  std::unique_ptr<AgentMetrics> metrics;
  if (config->metrics_listen) metrics = std::make_unique<AgentMetrics>();
  Agent agent(io, *config, credentials, metrics.get());
  // Bound before the agent touches ZooKeeper: an address that cannot be
  // bound stops the agent here, with nothing registered.
  std::unique_ptr<MetricsServer> metrics_server;
  if (config->metrics_listen) {
    auto server = MetricsServer::Listen(
        io, *config->metrics_listen, [&agent, &metrics] {
          agent.RefreshMetrics();
          return MetricsServer::Page{metrics->Serialize(),
                                     AgentMetrics::ContentType()};
        });
    if (!server.ok()) {
      std::cerr << "zkroll-agent: " << server.status().message() << "\n";
      return 2;
    }
    metrics_server = std::move(*server);
    ListenAddress bound = *config->metrics_listen;
    bound.port = metrics_server->port();
    LOG(INFO) << "serving Prometheus metrics at http://" << bound.ToString()
              << "/metrics";
  }
  SystemdNotifier notifier(io, [&agent] { return agent.Summary(); });
  Status started = agent.Start();
  if (!started.ok()) {
    std::cerr << "zkroll-agent: " << started.message() << "\n";
    return started.code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  // Start() only posts work, so no state change is missed before this.
  agent.SetStateListener([&notifier] { notifier.StateChanged(); });
  notifier.Start();

  std::function<void()> arm_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      LOG(INFO) << "SIGHUP: reloading the configuration";
      notifier.Reloading();
      auto fresh = LoadConfig(cl);
      if (!fresh.ok()) {
        LOG(ERROR) << "reload refused, the running configuration stays: "
                   << fresh.status().message();
      } else {
        agent.Reload(*fresh);
      }
      notifier.Reloaded();
      arm_hup();
    });
  };
  arm_hup();
  stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    LOG(INFO) << "signal " << sig
              << ": deregistering every instance before exit";
    hup.cancel();
    notifier.Stopping();
    agent.Shutdown(std::chrono::seconds(5), [&] { io.stop(); });
  });
  io.run();
  agent.SetStateListener(nullptr);  // the notifier goes first
  LOG(INFO) << "zkroll-agent stopped";
  return 0;
}

}  // namespace zkroll::agent
