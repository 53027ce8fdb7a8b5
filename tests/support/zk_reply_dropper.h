// A TCP proxy between one ZooKeeper client and a test server that can lose
// one reply: the request reaches the server and is applied, its answer is
// dropped and the connection cut, and every reconnect is refused until the
// test releases it. That is a "lost reply" forced at one chosen request,
// which neither a frozen server (it applies nothing while stopped) nor a
// killed one can give. It can also hold one reply instead (HoldReplyTo):
// the request is applied and stays in flight for the client until the test
// lets the reply through, so the test can act in between.
//
// It reads ZooKeeper's framing only: every packet is a 4-byte big-endian
// length and a body; after the connect handshake a request body starts
// with {xid, type}, a reply body with {xid, zxid, err}.
#ifndef ZKROLL_TESTS_SUPPORT_ZK_REPLY_DROPPER_H_
#define ZKROLL_TESTS_SUPPORT_ZK_REPLY_DROPPER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace zkroll::testing {

class ZkReplyDropper {
 public:
  // Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:server_port.
  explicit ZkReplyDropper(int server_port);
  ~ZkReplyDropper();
  ZkReplyDropper(const ZkReplyDropper&) = delete;
  ZkReplyDropper& operator=(const ZkReplyDropper&) = delete;

  bool ok() const { return listen_fd_ >= 0; }
  int port() const { return port_; }
  std::string connect_string() const;

  // The next request whose body holds `path` as a ZooKeeper string (its
  // length, then its bytes) is forwarded; its reply is dropped, both sides
  // of that connection are closed, and new connections are refused (closed
  // on accept) until Release().
  void DropReplyTo(const std::string& path);
  // The same request is forwarded, but its reply, and every later reply on
  // that connection, is held rather than dropped, with the connection kept
  // open: for the client the request stays in flight until Release()
  // delivers them in order. The client's pings go unanswered meanwhile, so
  // hold for well under two thirds of its session timeout.
  void HoldReplyTo(const std::string& path);
  // Ends a drop's refusing of connections, or delivers held replies.
  void Release();
  // The reply was dropped; its error code (0: the server applied it).
  bool dropped() const { return dropped_; }
  // The reply is being held (the server answered; the client waits).
  bool held() const { return held_; }
  int32_t dropped_error() const { return dropped_error_; }
  // Connections accepted, refused while holding, and failed to reach the
  // server (with the last errno), for failure messages.
  std::string Describe() const;

 private:
  struct Pair;
  void Run();
  void Accept();
  // Returns false when the pair must be closed.
  bool Pump(Pair& p, bool from_client);
  void DeliverHeld();

  int port_ = 0;
  int server_port_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string pattern_;  // guarded by mu_; empty: nothing armed
  bool hold_mode_ = false;  // guarded by mu_: the armed pattern holds
  std::atomic<bool> held_{false};
  std::atomic<bool> release_{false};  // deliver held replies (proxy thread)
  std::atomic<bool> holding_{false};
  std::atomic<bool> dropped_{false};
  std::atomic<int32_t> dropped_error_{0};
  std::atomic<int> accepted_{0};
  std::atomic<int> refused_{0};
  std::atomic<int> server_failures_{0};
  std::atomic<int> server_errno_{0};
  std::vector<std::unique_ptr<Pair>> pairs_;  // the proxy thread's only
};

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_SUPPORT_ZK_REPLY_DROPPER_H_
