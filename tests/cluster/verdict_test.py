#!/usr/bin/env python3
"""Unit tests of the cluster test's verdict on callers' failed requests:
each must be explained by a fault window that covers its second and its
instance, or be reported as unexplained (no namespaces, no root)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_test import attribute_failures  # noqa: E402

T0 = 1_800_000_000_000


def fault(kind, start_s, end_s, scope, recovery_s=0):
    return {"kind": kind, "target": "t", "start_ms": T0 + start_s * 1000,
            "end_ms": T0 + end_s * 1000, "recovery_ms": recovery_s * 1000, "scope": scope}


def caller(*rows, name="caller1"):
    return {"name": name, "summary": {"started_at_unix_ms": T0},
            "timeline": [{"second": str(s), "instance": i, "failed": str(n)} for s, i, n in rows]}


class AttributionTest(unittest.TestCase):
    def test_failure_on_the_partitioned_host_is_attributed(self):
        faults = [fault("partition-agent-host", 10, 17, ["10.250.16.25"], recovery_s=1)]
        n, unexplained = attribute_failures(faults, [caller((12, "10.250.16.25:8003", 4))])
        self.assertEqual((n, unexplained), (4, []))
        self.assertEqual(faults[0]["failed_requests"], 4)

    def test_failure_on_another_host_is_unexplained(self):
        faults = [fault("partition-agent-host", 10, 17, ["10.250.16.25"])]
        n, unexplained = attribute_failures(faults, [caller((12, "10.250.16.21:8003", 2))])
        self.assertEqual(n, 0)
        self.assertEqual(unexplained, [{"caller": "caller1", "second": "12",
                                        "instance": "10.250.16.21:8003", "failed": 2}])

    def test_failure_outside_every_window_is_unexplained(self):
        faults = [fault("kill-zk-leader", 10, 11, "all", recovery_s=2)]
        n, unexplained = attribute_failures(
            faults, [caller((12, "10.250.16.21:8001", 1), (40, "10.250.16.21:8001", 3))])
        self.assertEqual(n, 1)
        self.assertEqual([u["second"] for u in unexplained], ["40"])

    def test_a_caller_fault_explains_only_that_callers_failures(self):
        f = fault("partition-caller", 10, 13, ["10.250.16.21"], recovery_s=2)
        f["caller"] = "caller1"
        n, unexplained = attribute_failures(
            [f], [caller((11, "10.250.16.21:8001", 5)),
                  caller((11, "10.250.16.21:8001", 2), name="caller2")])
        self.assertEqual(n, 5)
        self.assertEqual([(u["caller"], u["failed"]) for u in unexplained], [("caller2", 2)])

    def test_scope_by_instance(self):
        faults = [fault("kill-coordinator", 5, 9, ["10.250.16.22:8002"])]
        n, unexplained = attribute_failures(
            faults, [caller((6, "10.250.16.22:8002", 1), (6, "10.250.16.22:8003", 1))])
        self.assertEqual(n, 1)
        self.assertEqual([u["instance"] for u in unexplained], ["10.250.16.22:8003"])


if __name__ == "__main__":
    unittest.main()
