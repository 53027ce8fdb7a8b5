#include "common/health/own_connections.h"

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <utility>

namespace zkroll::health {
namespace {

constexpr std::chrono::seconds kRemember(120);

struct Table {
  using Key = std::pair<std::string, uint16_t>;
  using Time = std::chrono::steady_clock::time_point;
  std::mutex mu;
  std::map<Key, Time> last;
  std::deque<std::pair<Key, Time>> order;  // every record, oldest first

  void Prune(Time now) {
    while (!order.empty() && (now - order.front().second > kRemember ||
                              order.size() > kMaxRemembered)) {
      auto it = last.find(order.front().first);
      // A reused endpoint keeps its newer record.
      if (it != last.end() && it->second == order.front().second) {
        last.erase(it);
      }
      order.pop_front();
    }
  }
};

Table& table() {
  static Table* t = new Table;  // never destroyed: checks may run at exit
  return *t;
}

}  // namespace

void RecordOwnConnection(const std::string& ip, uint16_t port) {
  Table& t = table();
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(t.mu);
  Table::Key key{ip, port};
  t.last[key] = now;
  t.order.emplace_back(std::move(key), now);
  t.Prune(now);
}

void RecordOwnConnection(const boost::asio::ip::tcp::socket& socket) {
  boost::system::error_code ec;
  auto local = socket.local_endpoint(ec);
  if (ec) return;
  auto address = local.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped,
                                               address.to_v6());
  }
  RecordOwnConnection(address.to_string(), local.port());
}

bool IsOwnConnection(const std::string& ip, uint16_t port) {
  Table& t = table();
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.last.find({ip, port});
  return it != t.last.end() && now - it->second <= kRemember;
}

}  // namespace zkroll::health
