"""B1 and B2's jaxhp rows alone, for before/after comparisons of the engine across commits.

Run it from bench/ of each tree with that tree's jaxhp first on the path, alternating the
trees in separate processes, e.g. for a commit checked out in ../before:
  (cd ../before/bench && PYTHONPATH=.. python ../../jaxhp/bench/before_after.py)
  (cd bench && PYTHONPATH=.. python before_after.py)
It prints {"B1": [first call s, steady median s], "B2": [...]} as JSON.
"""

import json
import sys

sys.path.insert(0, ".")  # the tree's own bench/sweep.py (its workloads and timer)

import jaxhp  # noqa: E402

jaxhp.sweep.use_cpu_cores()

import sweep as bench  # noqa: E402


def main():
    out = {}
    for name, w in (("B1", bench.b1_workload(False)), ("B2", bench.b2_workload(False))):
        timing, _ = bench.jaxhp_row(w)
        out[name] = [round(timing["first_s"], 2), round(timing["median_s"], 3)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
