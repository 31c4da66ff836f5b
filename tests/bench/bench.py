#!/usr/bin/env python3
"""make bench: what pve-usb-hotplug costs per event, next to the bare QMP
exchange the same work needs (tests/bench/bare-qmp.c), measured in the same
run against a real QEMU guest.

The simulated host's USB tree is a umockdev tree copied out and bind-mounted
over /sys in a private mount namespace, so the program reads sysfs as it
would on a real host, with no preload library in the way. (Measured:
libudev 252 refuses a /sys that is not a sysfs mount unless
SYSTEMD_DEVICE_VERIFY_SYSFS=0, which the program's environment here sets.)
Needs root (for the mount namespace). Prints a Markdown table for the README.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pvesim import Guest, Host, PlainGuest, Qmp, Tool  # noqa: E402


MAXRSS = None  # tests/bench/maxrss, built


def run_measured(argv, env):
    """Seconds one process takes, started straight from here."""
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (argv, r.returncode, r.stderr))
    return took


def peak_rss(argv, env):
    """Peak resident set size (KiB) of one process, started by the small
    maxrss launcher: Linux keeps the high-water mark across exec, so a
    process forked from Python would carry Python's pages."""
    r = subprocess.run([MAXRSS] + argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (argv, r.returncode, r.stderr))
    return int(r.stderr.rsplit("MAXRSS ", 1)[1])


def instructions(argv, env):
    """Instructions executed (callgrind), which does not drift with load."""
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv,
                       env=env, capture_output=True, text=True)
    m = re.search(r"Collected : (\d+)", r.stderr)
    return int(m.group(1)) if m else None


class Bench:
    def __init__(self, binary, bare, runs):
        self.runs = runs
        self.bare = os.path.abspath(bare)
        self.work = tempfile.mkdtemp(prefix="puh-bench-")
        self.tool = Tool(binary, self.work)
        self.tool.write_settings(extra="[log]\nlevel = warning\n")
        self.host = Host(self.work)
        self.rows = []

    def build_host(self):
        h = self.host
        h.hub("3-4")
        h.plug("3-4.1", 0x046D, 0xC52B, product="Receiver")     # claimed
        h.plug("3-5", 0x0781, 0x5581)                           # nobody's
        h.plug("3-7", 0x0483, 0x5740, product="Board")          # a plain QEMU's
        h.hub("3-6")
        for i in range(1, 6):
            h.hub("3-6.%d" % i)
            for k in range(1, 7):
                h.plug("3-6.%d.%d" % (i, k), 0x1000 + i, k, speed="12")
        tree = h.write()
        sysdir = os.path.join(self.work, "sys")
        subprocess.run(["umockdev-run", "--device", tree, "--", "sh", "-c",
                        'cp -a "$UMOCKDEV_DIR/sys" "%s"' % sysdir], check=True)
        return sysdir

    def env(self, extra=None):
        argv, e = self.tool.cmd([], env=extra)
        e["SYSTEMD_DEVICE_VERIFY_SYSFS"] = "0"
        return e

    def compare(self, name, tool_runs, bare_runs, reset=None, events=1):
        """tool_runs/bare_runs: lists of (argv, env) making up one sample."""
        t_times, b_times, peak = [], [], 0
        for _ in range(self.runs):
            for runs, times in ((tool_runs, t_times), (bare_runs, b_times)):
                times.append(sum(run_measured(argv, env) for argv, env in runs))
                if reset:
                    reset()
        for argv, env in tool_runs:
            peak = max(peak, peak_rss(argv, env))
        if reset:
            reset()
        ins = [instructions(argv, env) for argv, env in tool_runs]
        bare_ins = [instructions(argv, env) for argv, env in bare_runs]
        if reset:
            reset()
        t, b = statistics.median(t_times), statistics.median(b_times)
        self.rows.append((name, t * 1000, b * 1000, t / b, peak,
                          sum(i or 0 for i in ins) // events, sum(i or 0 for i in bare_ins) // events))

    def clear(self, guest):
        q = Qmp(guest.qmp_path)
        try:
            for item in q.cmd("qom-list", path="/machine/peripheral"):
                if item["name"].startswith("usbhost"):
                    q.cmd("device_del", id=item["name"])
        finally:
            q.close()

    def main(self):
        sysdir = self.build_host()
        guest = Guest(100, self.tool.qmp_dir)
        desk = None
        try:
            subprocess.run(["mount", "--bind", sysdir, "/sys"], check=True)
            self.tool.usb_conf(100, "3-4\n")
            binary = self.tool.binary
            sock = guest.qmp_path
            add = self.env(self.host.event_env("add", "3-4.1"))
            remove = self.env(self.host.event_env("remove", "3-4.1"))
            none = self.env()

            # sanity: the program sees the tree and attaches
            run_measured([binary], add)
            assert guest.ports() == ["3-4.1"], guest.ports()
            run_measured([binary], remove)
            assert guest.ports() == [], guest.ports()

            self.compare("udev add + remove of a claimed device (2 runs)",
                         [([binary], add), ([binary], remove)],
                         [([self.bare, sock, "add", "3", "4.1", "xhci.0", "15"], none),
                          ([self.bare, sock, "del", "usbhost3-4.1"], none)], events=2)
            self.compare("udev add of a device no VM claims",
                         [([binary], self.env(self.host.event_env("add", "3-5")))],
                         [([self.bare, "none"], none)])
            self.compare("udev event of an interface",
                         [([binary], self.env(self.host.event_env("add", "3-4.1", interface=0)))],
                         [([self.bare, "none"], none)])

            self.tool.usb_conf(100, "3-6\n")
            run_measured([binary, "100", "post-start"], none)   # adds its own controller once
            assert len(guest.ports()) == 30, guest.ports()
            where = {"%d-%s" % (v["hostbus"], v["hostport"]): (v["bus"], v["port"])
                     for v in guest.usb_hosts(with_port=True).values()}
            self.clear(guest)
            bare_add = [self.bare, sock, "add"]
            for port, (bus, gport) in sorted(where.items()):
                bare_add += port.split("-", 1) + [bus, gport]
            self.compare("post-start with 30 devices behind hubs",
                         [([binary, "100", "post-start"], none)], [(bare_add, none)],
                         reset=lambda: self.clear(guest))

            # a QEMU started by hand, declared in the settings, beside the
            # Proxmox VM
            desk = PlainGuest(os.path.join(self.work, "desk.qmp"), ["-device", "qemu-xhci,id=xhci,p2=15,p3=15"])
            self.tool.declare("[qemu desk]\nqmp = %s\n" % desk.qmp_path)
            self.tool.guest_rules("desk", "3-7\n")
            add7 = self.env(self.host.event_env("add", "3-7"))
            remove7 = self.env(self.host.event_env("remove", "3-7"))
            run_measured([binary], add7)
            assert desk.ports() == ["3-7"], desk.ports()
            run_measured([binary], remove7)
            assert desk.ports() == [], desk.ports()
            self.compare("plain QEMU guest: udev add + remove (2 runs)",
                         [([binary], add7), ([binary], remove7)],
                         [([self.bare, desk.qmp_path, "add", "3", "7", "xhci.0", "15"], none),
                          ([self.bare, desk.qmp_path, "del", "usbhost3-7"], none)], events=2)
        finally:
            if desk:
                desk.stop()
            guest.stop()
            subprocess.run(["umount", "/sys"])
            shutil.rmtree(self.work, ignore_errors=True)
        self.report()

    def report(self):
        print("\n| work | pve-usb-hotplug | bare QMP | ratio | peak RSS | instructions per event (bare) |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, t, b, ratio, rss, ins, bins in self.rows:
            print("| %s | %.2f ms | %.2f ms | %.2fx | %.1f MiB | %s (%s) |"
                  % (name, t, b, ratio, rss / 1024.0, format(ins, ","), format(bins, ",")))
        print("\nMedian of %d runs each, alternating; QEMU %s; %s." % (
            self.runs, subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                                      text=True).stdout.split("\n")[0].split()[-1],
            os.uname().machine))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--bare", required=True)
    ap.add_argument("--maxrss", required=True)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    if os.environ.get("PUH_BENCH_NS") != "1":
        if os.geteuid() != 0:
            sys.exit("make bench needs root: it bind-mounts the simulated /sys in a private mount namespace")
        env = dict(os.environ, PUH_BENCH_NS="1")
        os.execvpe("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                               os.path.abspath(__file__)] + sys.argv[1:], env)
    global MAXRSS
    MAXRSS = os.path.abspath(args.maxrss)
    Bench(args.binary, args.bare, args.runs).main()


if __name__ == "__main__":
    main()
