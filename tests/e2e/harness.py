"""The harness of the end-to-end suite: the built binary, under umockdev,
against real QEMU guests.

Each test builds a host USB tree, starts Proxmox-layout guests with their QMP
sockets in a temporary directory, runs the program as Proxmox (hookscript) or
udev (event in the environment) would, and asks the guests over QMP what they
really have. The tests are the test_*.py files next to this one, one an area.

What it runs, from the environment (tests/e2e/run.py sets the first two from
its --binary and --plug):
  PUH_BINARY    the program (default: build/pve-usb-hotplug)
  PUH_PLUG      the umockdev-plug test helper (default: build/tests/umockdev-plug)
  PUH_SCRATCH   where the temporary directories go (default: a tmpfs, see scratch())
  PUH_QEMU, PUH_VALGRIND: see tests/lib/pvesim.py
"""
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from fakeqmp import FakeQmp  # noqa: E402,F401
from pvesim import Guest, Host, PlainGuest, Qmp, Tool  # noqa: E402,F401
import libvirtsim  # noqa: E402,F401

__all__ = ["Case", "LoopDisks", "stamp", "FakeQmp", "Guest", "Host", "PlainGuest", "Qmp", "Tool",
           "libvirtsim", "BINARY", "SCRATCH", "TOP"]

BINARY = os.environ.get("PUH_BINARY") or os.path.join(TOP, "build", "pve-usb-hotplug")
Tool.plug_helper = os.path.abspath(os.environ.get("PUH_PLUG")
                                   or os.path.join(TOP, "build", "tests", "umockdev-plug"))


def on_tmpfs(path):
    """Whether path is on a tmpfs that lets programs run (the tests write
    scripts for the program to run), from /proc/self/mountinfo."""
    path, best, ok = os.path.realpath(path), "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields, rest = line.split(" - ", 1)
            fields = fields.split()
            mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best):
                best, ok = mnt, rest.split()[0] == "tmpfs" and "noexec" not in fields[5].split(",")
    return ok


def scratch():
    """A directory of this run's own for everything the tests write, and
    whether it is a tmpfs mounted for it. umockdev-run makes its test bed in
    TMPDIR: 0.1 to 0.8 s a run on ext4, 10 to 45 ms on a tmpfs. So:
    PUH_SCRATCH if set, else the temporary directory if it is a tmpfs, else
    /dev/shm if it is one, else (as root) a tmpfs mounted for the run, else
    the temporary directory anyway. Its path is short: QEMU's QMP sockets go
    below it, and a unix socket's path has 108 bytes at most."""
    if os.environ.get("PUH_SCRATCH"):
        return tempfile.mkdtemp(prefix="puh-", dir=os.environ["PUH_SCRATCH"]), False
    for where in (tempfile.gettempdir(), "/dev/shm"):
        if on_tmpfs(where) and os.access(where, os.W_OK | os.X_OK):
            return tempfile.mkdtemp(prefix="puh-", dir=where), False
    path = tempfile.mkdtemp(prefix="puh-")
    if os.geteuid() == 0:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "puh-e2e", path], capture_output=True)
        return path, r.returncode == 0
    return path, False


def drop_scratch(path, mounted):
    if mounted and subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)   # still held: detach it
    shutil.rmtree(path, ignore_errors=True)


SCRATCH, MOUNTED = scratch()
atexit.register(drop_scratch, SCRATCH, MOUNTED)
# the tests' directories (tempfile), and umockdev-run's and every other
# program's temporary files (TMPDIR, passed on to them)
os.environ["TMPDIR"] = tempfile.tempdir = SCRATCH


def stamp(g):
    """The guest QEMU's "pid:start time", as the program's port hint names it."""
    with open("/proc/%d/stat" % g.proc.pid) as f:
        return "%d:%s" % (g.proc.pid, f.read().rsplit(")", 1)[1].split()[19])


class Case(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="puh-e2e-")
        self.tool = Tool(BINARY, self.dir)
        self.host = Host(self.dir)
        self.guests = []

    def tearDown(self):
        for g in self.guests:
            g.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def guest(self, vmid, qmp_dir=None, **kw):
        g = Guest(vmid, qmp_dir or self.tool.qmp_dir, **kw)
        self.guests.append(g)
        return g

    def clean(self, r):
        """No sanitizer or valgrind report."""
        self.assertNotIn("AddressSanitizer", r.stderr)
        self.assertNotIn("runtime error", r.stderr)
        self.assertNotRegex(r.stderr, r"(?m)^==\d+== ", "valgrind:\n" + r.stderr)
        self.assertNotEqual(r.returncode, 99)

    def ok(self, r):
        self.assertEqual(r.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout, r.stderr))
        self.clean(r)
        return r

    def storm(self, chains):
        """Runs each device's chain of events in order, all devices at once,
        as udev does; the runs that failed."""
        tree, failures = self.host.write(), []

        def run_chain(p):
            for action in chains[p]:
                argv, env = self.tool.cmd([], env=self.host.event_env(action, p))
                r = subprocess.run(["umockdev-run", "--device", tree, "--"] + argv, env=env,
                                   capture_output=True, text=True, timeout=120)
                if r.returncode != 0 or "AddressSanitizer" in r.stderr:
                    failures.append((p, action, r.stderr))
        threads = [threading.Thread(target=run_chain, args=(p,)) for p in chains]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return failures

    def failed(self, r):
        self.assertNotEqual(r.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout, r.stderr))
        self.clean(r)
        return r


class LoopDisks:
    """USB disks backed by real loop devices (QEMU opens them), described
    to the program by the umockdev tree."""

    def loop(self, size=64 << 20):
        if not hasattr(self, "loops"):
            self.loops = []
            # after the guests (tearDown) are gone: they hold the devices
            self.addCleanup(lambda: [subprocess.run(["losetup", "-d", d], capture_output=True)
                                     for d in self.loops])
        img = os.path.join(self.dir, "disk%d.img" % len(self.loops))
        with open(img, "wb") as f:
            f.truncate(size)
        dev = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True,
                             check=True).stdout.strip()
        self.loops.append(dev)
        return dev

    def plug_disk(self, port, name, serial, **kw):
        """A USB disk at port backed by a new loop device, with its by-id link."""
        dev = self.loop()
        d = self.host.plug_disk(port, name, serial, os.stat(dev).st_rdev, **kw)
        d.dev = dev
        os.symlink(dev, os.path.join(self.tool.disk_dir, d.link))
        return d

    def pull_disk(self, d):
        os.unlink(os.path.join(self.tool.disk_dir, d.link))
        self.host.unplug(d.port)

    def disk_event(self, action, d):
        return self.tool.run(host=self.host, env=self.host.disk_env(action, d.name, d))

    @staticmethod
    def opened_by_anyone(dev):
        """Whether any process has the block device open."""
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                fds = "/proc/%s/fd" % pid
                if any(os.path.realpath(os.path.join(fds, f)) == dev for f in os.listdir(fds)):
                    return True
            except OSError:
                pass
        return False

