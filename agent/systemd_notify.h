// Tells systemd how the agent is doing, for a unit with Type=notify, through
// libsystemd's sd_notify (sd_notify(3)):
//   READY=1      once the agent's start-up is over (AgentSummary::started:
//                session up, first reconcile done), and again when a reload
//                has been applied;
//   STATUS=...   the one-line summary (agent/summary.h) whenever it changes,
//                at most one every kMinStatusGap;
//   WATCHDOG=1   at half of WATCHDOG_USEC, from a timer on the agent's own
//                io_context: if the event loop stops turning, the pings stop
//                and systemd (WatchdogSec=) restarts the agent;
//   RELOADING=1  when a SIGHUP reload begins (only once READY was sent, so a
//                reload during start-up never reports a false READY);
//   STOPPING=1   when shutdown begins.
// Outside systemd (no NOTIFY_SOCKET in the environment) sd_notify does
// nothing and no watchdog timer runs, so the notifier is always safe to use.
// Children of the agent (exec checks) inherit NOTIFY_SOCKET; the unit's
// NotifyAccess=main makes systemd ignore anything they send.
//
// Threading: construct, call and destroy on the io_context's thread (or
// before it runs); destroy before the io_context.
#ifndef ZKROLL_AGENT_SYSTEMD_NOTIFY_H_
#define ZKROLL_AGENT_SYSTEMD_NOTIFY_H_

#include <chrono>
#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/summary.h"

namespace zkroll::agent {

class SystemdNotifier {
 public:
  // A flapping instance must not turn into a stream of messages to PID 1.
  static constexpr std::chrono::milliseconds kMinStatusGap{250};

  // `summary` is read on every status update; it must stay callable while
  // the notifier lives.
  SystemdNotifier(boost::asio::io_context& io,
                  std::function<AgentSummary()> summary);
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  // Sends the first status and starts the watchdog pings if systemd asked
  // for them (sd_watchdog_enabled: WATCHDOG_USEC set, and WATCHDOG_PID
  // unset or ours).
  void Start();

  // The summary may have changed. Cheap; call as often as you like.
  void StateChanged();

  void Reloading();
  // After a reload was applied or refused: READY=1 again (if READY was sent
  // before) with the current status.
  void Reloaded();
  // Shutdown began: STOPPING=1; no READY or status updates follow. The
  // watchdog keeps pinging while the agent deregisters.
  void Stopping();

  // The watchdog interval in use, zero when systemd did not ask for pings.
  std::chrono::microseconds watchdog_interval() const { return watchdog_; }

 private:
  void Flush();
  void ArmWatchdog();
  void Send(const std::string& message);

  std::function<AgentSummary()> summary_;
  boost::asio::steady_timer status_timer_;
  boost::asio::steady_timer watchdog_timer_;
  std::chrono::microseconds watchdog_{0};
  std::chrono::steady_clock::time_point last_status_{};
  std::string last_line_;
  bool flush_pending_ = false;
  bool ready_sent_ = false;
  bool stopping_ = false;
  bool send_failed_logged_ = false;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_SYSTEMD_NOTIFY_H_
