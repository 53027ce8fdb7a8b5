// OwnConnections: the local endpoints of the TCP connections this process's
// own health checks opened, remembered for two minutes.
//
// A traffic observer (agent/observe) counts every new connection to an
// instance's port as a caller's, but the agent checks the same port itself
// every interval. A check connection lives a millisecond or so and is
// usually gone (or in TIME_WAIT, which names no process) by the time the
// observer samples, so its process cannot be looked up afterwards; the
// check records its endpoint here instead, before it closes the socket.
// Two minutes outlast TIME_WAIT (60 s on Linux).
//
// Threading: thread-safe (checks of the coordinator may run on any thread).
// Memory: at most kMaxRemembered endpoints; the oldest go first.
#ifndef ZKROLL_COMMON_HEALTH_OWN_CONNECTIONS_H_
#define ZKROLL_COMMON_HEALTH_OWN_CONNECTIONS_H_

#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

namespace zkroll::health {

inline constexpr size_t kMaxRemembered = 8192;

// `ip` in the text form inet_ntop writes (IPv4-mapped IPv6 as plain IPv4).
void RecordOwnConnection(const std::string& ip, uint16_t port);
// The local endpoint of a connected socket (nothing if it has none).
void RecordOwnConnection(const boost::asio::ip::tcp::socket& socket);
bool IsOwnConnection(const std::string& ip, uint16_t port);

}  // namespace zkroll::health

#endif  // ZKROLL_COMMON_HEALTH_OWN_CONNECTIONS_H_
