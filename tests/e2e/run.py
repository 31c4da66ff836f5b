#!/usr/bin/env python3
"""Runs the end-to-end suite: the built binary, under umockdev, against real
QEMU guests (harness.py; the tests are test_AREA.py, one file an area).

    run.py --binary BIN --plug PLUG [-k PATTERN] [AREA ...]

AREA: only those files (`make check-e2e AREA=disks`); -k: only the tests
whose names contain PATTERN. The same tests run under
`python3 -m unittest discover -s tests/e2e -t .` (in the top directory),
with PUH_BINARY and PUH_PLUG for the options.
"""
import argparse
import importlib
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
AREAS = sorted(f[len("test_"):-len(".py")] for f in os.listdir(HERE)
               if f.startswith("test_") and f.endswith(".py"))


class Summary(unittest.TextTestResult):
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--plug", required=True, help="the umockdev-plug test helper")
    ap.add_argument("-k", dest="pattern", action="append")
    ap.add_argument("areas", nargs="*", metavar="AREA", help="only these: " + ", ".join(AREAS))
    args = ap.parse_args()
    unknown = [a for a in args.areas if a not in AREAS]
    if unknown:
        ap.error("no area %s; the areas are %s" % (", ".join(unknown), ", ".join(AREAS)))
    # before the harness is imported: it reads them
    os.environ["PUH_BINARY"] = os.path.abspath(args.binary)
    os.environ["PUH_PLUG"] = os.path.abspath(args.plug)
    sys.path.insert(0, os.path.dirname(HERE))     # tests/: this is package e2e
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = ["*%s*" % p for p in args.pattern]
    suite = unittest.TestSuite()
    for area in args.areas or AREAS:
        suite.addTests(loader.loadTestsFromModule(importlib.import_module("e2e.test_" + area)))
    result = unittest.TextTestRunner(verbosity=2, resultclass=Summary).run(suite)
    failed = len(result.failures) + len(result.errors)
    print("e2e: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
