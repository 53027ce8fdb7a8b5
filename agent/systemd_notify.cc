#include "agent/systemd_notify.h"

#include <glog/logging.h>
#include <systemd/sd-daemon.h>

#include <cstring>
#include <ctime>

namespace zkroll::agent {

SystemdNotifier::SystemdNotifier(boost::asio::io_context& io,
                                 std::function<AgentSummary()> summary)
    : summary_(std::move(summary)),
      status_timer_(io),
      watchdog_timer_(io) {}

SystemdNotifier::~SystemdNotifier() {
  status_timer_.cancel();
  watchdog_timer_.cancel();
}

void SystemdNotifier::Start() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0 && usec > 0) {
    // Half the timeout, as sd_watchdog_enabled(3) advises: one late wake-up
    // of a busy loop does not get the agent killed.
    watchdog_ = std::chrono::microseconds(usec / 2);
    LOG(INFO) << "systemd watchdog: pinging every " << watchdog_.count() / 1000
              << "ms (WatchdogSec=" << usec / 1000 << "ms)";
    Send("WATCHDOG=1");
    ArmWatchdog();
  }
  StateChanged();
}

void SystemdNotifier::ArmWatchdog() {
  watchdog_timer_.expires_after(watchdog_);
  watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    Send("WATCHDOG=1");
    ArmWatchdog();
  });
}

void SystemdNotifier::StateChanged() {
  if (flush_pending_ || stopping_) return;
  flush_pending_ = true;
  // Runs at once unless a status went out less than kMinStatusGap ago; the
  // changes made meanwhile are folded into one message.
  status_timer_.expires_at(last_status_ + kMinStatusGap);
  status_timer_.async_wait([this](const boost::system::error_code& ec) {
    flush_pending_ = false;
    if (!ec) Flush();
  });
}

void SystemdNotifier::Flush() {
  if (stopping_) return;
  const AgentSummary s = summary_();
  std::string line = StatusLine(s);
  std::string message;
  if (s.started && !ready_sent_) {
    ready_sent_ = true;
    LOG(INFO) << "ready: " << line;
    message = "READY=1\n";
  } else if (line == last_line_) {
    return;
  }
  last_line_ = line;
  last_status_ = std::chrono::steady_clock::now();
  Send(message + "STATUS=" + line);
}

void SystemdNotifier::Reloading() {
  if (!ready_sent_ || stopping_) return;
  // MONOTONIC_USEC lets systemd (Type=notify-reload, v253+) match this
  // RELOADING=1 with the reload it asked for; older versions ignore it.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t usec = static_cast<uint64_t>(now.tv_sec) * 1000000 +
                  static_cast<uint64_t>(now.tv_nsec) / 1000;
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) +
       "\nSTATUS=reloading the configuration");
  last_line_.clear();  // the next status goes out even if unchanged
}

void SystemdNotifier::Reloaded() {
  if (!ready_sent_ || stopping_) return;
  std::string line = StatusLine(summary_());
  last_line_ = line;
  last_status_ = std::chrono::steady_clock::now();
  Send("READY=1\nSTATUS=" + line);
}

void SystemdNotifier::Stopping() {
  if (stopping_) return;
  stopping_ = true;
  status_timer_.cancel();
  Send("STOPPING=1\nSTATUS=stopping: deregistering every instance");
}

void SystemdNotifier::Send(const std::string& message) {
  int r = sd_notify(/*unset_environment=*/0, message.c_str());
  if (r < 0 && !send_failed_logged_) {
    // Logged once: a watchdog ping that cannot be sent would otherwise log
    // every few seconds. systemd will act on the missing pings.
    send_failed_logged_ = true;
    LOG(WARNING) << "cannot notify systemd (NOTIFY_SOCKET): "
                 << std::strerror(-r);
  }
}

}  // namespace zkroll::agent
