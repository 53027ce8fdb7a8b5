// Smooth weighted round robin, precomputed as one cycle of picks.
//
// nginx's smooth weighted round robin spreads the picks of a heavy instance
// through the cycle (weights {5,1,1} give a a b a c a a, not a a a a a b c),
// so a weight never turns into a burst. The classic algorithm mutates a
// "current weight" per instance on every pick, which would need a lock on
// the caller's hot path. Its sequence is periodic with period sum(weights),
// so we compute one period once per list change and a pick becomes an
// atomic counter modulo the period (client/discovery.h).
//
// Thread-safety: a pure function.
#ifndef ZKROLL_CLIENT_WEIGHTED_ROUND_ROBIN_H_
#define ZKROLL_CLIENT_WEIGHTED_ROUND_ROBIN_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace zkroll::client {

// Upper bound of a schedule's length. Building one costs
// length x instances steps; the bound keeps a list change well under a
// millisecond for realistic lists.
inline constexpr size_t kMaxScheduleLength = 16384;

// One period of the smooth weighted round robin over `weights`: indexes
// into `weights`, index i appearing in proportion to weights[i].
//
// - A weight of 0 counts as 1 (InstanceRecord's "0 = default").
// - Weights are divided by their greatest common divisor first, so equal
//   weights give plain round robin 0, 1, ..., n-1.
// - If the sum still exceeds max(max_length, n), the weights are scaled
//   down to about that sum (each at least 1); proportions are then kept
//   approximately, to within one pick per instance per period.
// - Ties go to the lower index, so the result is deterministic.
// An empty input gives an empty schedule.
std::vector<uint32_t> SmoothWeightedSchedule(
    const std::vector<uint32_t>& weights,
    size_t max_length = kMaxScheduleLength);

}  // namespace zkroll::client

#endif  // ZKROLL_CLIENT_WEIGHTED_ROUND_ROBIN_H_
