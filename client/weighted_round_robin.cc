#include "client/weighted_round_robin.h"

#include <algorithm>
#include <numeric>

namespace zkroll::client {

std::vector<uint32_t> SmoothWeightedSchedule(
    const std::vector<uint32_t>& weights, size_t max_length) {
  const size_t n = weights.size();
  if (n == 0) return {};
  std::vector<uint64_t> w(n);
  uint64_t divisor = 0;
  for (size_t i = 0; i < n; ++i) {
    w[i] = std::max<uint64_t>(weights[i], 1);
    divisor = std::gcd(divisor, w[i]);
  }
  uint64_t total = 0;
  for (auto& x : w) {
    x /= divisor;
    total += x;
  }
  const uint64_t limit = std::max<uint64_t>(max_length, n);
  if (total > limit) {
    // Scale down; every instance keeps at least one pick per period.
    for (auto& x : w) x = std::max<uint64_t>(1, x * limit / total);
    divisor = 0;
    for (auto x : w) divisor = std::gcd(divisor, x);
    total = 0;
    for (auto& x : w) {
      x /= divisor;
      total += x;
    }
  }

  std::vector<uint32_t> schedule;
  schedule.reserve(total);
  std::vector<int64_t> current(n, 0);
  const int64_t sum = static_cast<int64_t>(total);
  for (uint64_t step = 0; step < total; ++step) {
    size_t best = 0;
    for (size_t i = 0; i < n; ++i) {
      current[i] += static_cast<int64_t>(w[i]);
      if (current[i] > current[best]) best = i;
    }
    current[best] -= sum;
    schedule.push_back(static_cast<uint32_t>(best));
  }
  return schedule;
}

}  // namespace zkroll::client
