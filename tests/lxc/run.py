#!/usr/bin/env python3
"""Containers: the built binary, under umockdev, against a real LXC container.

The container is LXC's own (lxc-start, Debian 12's LXC 5), with a rootfs of
the host's busybox, in an lxcpath of a temporary directory, and runs, as
under Proxmox VE, on a pure cgroup v2 hierarchy: the whole suite runs in a
private mount namespace (it re-executes itself under unshare -m) with a
cgroup2 mounted over /sys/fs/cgroup there. The host's USB tree is
umockdev's, as in the end-to-end suite; the host's /dev/bus/usb/BBB/DDD is
a directory of the test's ([paths] usb_dev_dir) whose node carries the
numbers of a real character device (/dev/zero's), so that a process in the
container (lxc-attach) can read and write what it was passed, and the
container's device cgroup decides whether it may.

Needs root, lxc and busybox-static (tests/deps.sh). Writes nothing outside
its temporary directory but the cgroups of its containers.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pvesim import Host, Tool  # noqa: E402

BINARY = None
CTID = 200
BUSYBOX = os.environ.get("PUH_BUSYBOX") or shutil.which("busybox") or "/bin/busybox"
# the stand-in for a USB device's node: /dev/zero's numbers; the container
# may not use them unless it is passed them
PASSED = (1, 5)
# a device the container is never passed: /dev/full's
NOT_PASSED = (1, 7)

CONTAINER_CONFIG = """\
lxc.uts.name = ct{ctid}
lxc.rootfs.path = dir:{rootfs}
lxc.init.cmd = /bin/sleep 100000
lxc.net.0.type = empty
lxc.autodev = 1
lxc.mount.auto = proc:mixed sys:mixed
lxc.apparmor.profile = unconfined
lxc.cgroup2.devices.deny = a
lxc.cgroup2.devices.allow = c 1:3 rwm
lxc.cgroup2.devices.allow = c 1:8 rwm
lxc.cgroup2.devices.allow = c 1:9 rwm
lxc.cgroup2.devices.allow = c 5:* rwm
lxc.cgroup2.devices.allow = c 136:* rwm
lxc.log.file = {lxcpath}/{ctid}/log
"""


class Container:
    """An LXC container named by its CTID in lxcpath; unprivileged: its root
    is host uid and gid MAPPED, as Proxmox maps an unprivileged container's."""

    MAPPED = 100000

    def __init__(self, lxcpath, ctid, unprivileged=False):
        self.lxcpath, self.ctid = lxcpath, ctid
        self.dir = os.path.join(lxcpath, str(ctid))
        rootfs = os.path.join(self.dir, "rootfs")
        for d in ("bin", "dev", "proc", "sys", "tmp", "etc"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        shutil.copy(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
        for applet in ("sh", "sleep", "ls", "cat", "stat", "dd", "mknod", "rm", "echo", "test"):
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(CONTAINER_CONFIG.format(ctid=ctid, rootfs=rootfs, lxcpath=lxcpath))
            if unprivileged:
                f.write("lxc.idmap = u 0 %d 65536\nlxc.idmap = g 0 %d 65536\n"
                        % (self.MAPPED, self.MAPPED))
        if unprivileged:
            for top, dirs, files in os.walk(rootfs):
                for name in [top] + [os.path.join(top, x) for x in dirs + files]:
                    os.lchown(name, self.MAPPED, self.MAPPED)
            # its root reaches its rootfs through the test's directories
            d = self.dir
            while d != "/" and d != os.path.dirname(tempfile.gettempdir()):
                os.chmod(d, 0o755)
                d = os.path.dirname(d)

    def lxc(self, tool, *args, check=True):
        return subprocess.run([tool, "-P", self.lxcpath, "-n", str(self.ctid)] + list(args),
                              capture_output=True, text=True, check=check, timeout=60)

    def start(self, daemon=False):
        """As Proxmox starts it (lxc-start -F in pve-container@CTID), or
        daemonized (lxc-start -d: its monitor renames itself)."""
        if daemon:
            self.lxc("lxc-start", "-d")
        else:
            self.fg = subprocess.Popen(["lxc-start", "-P", self.lxcpath, "-n", str(self.ctid), "-F"],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.lxc("lxc-wait", "-s", "RUNNING", "-t", "10")

    fg = None

    def stop(self):
        self.lxc("lxc-stop", "-k", check=False)
        if self.fg:
            self.fg.wait(timeout=30)
            self.fg = None

    def sh(self, script):
        """Runs script in the container: (exit code, stdout + stderr)."""
        r = self.lxc("lxc-attach", "--clear-env", "--", "/bin/sh", "-c", script, check=False)
        return r.returncode, r.stdout + r.stderr


class TtyHost(Host):
    """The Host, and the tty nodes host drivers made for its devices'
    first interface: port -> (name, numbers, by-id link)."""

    def __init__(self, workdir):
        super().__init__(workdir)
        self.ttys = {}

    def tty_devpath(self, port):
        return "%s/%s:1.0/%s/tty/%s" % (self.devpath(port), port, self.ttys[port][0], self.ttys[port][0])

    def tty_env(self, action, port):
        """The environment udev gives a RUN+= program for the tty's event."""
        name, numbers, link = self.ttys[port]
        env = {"ACTION": action, "SUBSYSTEM": "tty", "SEQNUM": "1", "DEVPATH": self.tty_devpath(port),
               "DEVNAME": "/dev/" + name, "MAJOR": str(numbers[0]), "MINOR": str(numbers[1])}
        if link:
            env["DEVLINKS"] = "/dev/serial/by-path/%s:1.0-port0 /dev/serial/by-id/%s" % (self.id_path(port), link)
        return env

    def write(self, name="host.umockdev", roots=True):
        path = super().write(name, roots)
        with open(path, "a") as f:
            for port in sorted(p for p in self.ttys if p in self.devices):
                props = self.tty_env("add", port)
                f.write("\nP: %s\n" % props.pop("DEVPATH"))
                for k in ("ACTION", "SEQNUM"):
                    props.pop(k)
                f.write("".join("E: %s=%s\n" % kv for kv in props.items()))
                f.write("A: dev=%d:%d\n" % self.ttys[port][1])
        return path


class Case(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="puh-lxc-")
        self.lxcpath = os.path.join(self.dir, "lxc")
        self.pve_lxc = os.path.join(self.dir, "pve-lxc")
        self.usb_dev = os.path.join(self.dir, "dev-bus-usb")
        # the host's /dev, for the nodes of interfaces
        self.dev = os.path.join(self.dir, "dev")
        for d in (self.lxcpath, self.pve_lxc, self.usb_dev, self.dev):
            os.makedirs(d)
        self.tool = Tool(BINARY, self.dir)
        self.tool.write_settings(extra="[paths]\nlxc_config_dir = %s\nlxcpath = %s\nusb_dev_dir = %s\n"
                                 "dev_dir = %s\n" % (self.pve_lxc, self.lxcpath, self.usb_dev, self.dev))
        self.host = TtyHost(self.dir)
        self.ct = Container(self.lxcpath, CTID)
        # what Proxmox keeps of the container: its <ctid>.conf makes the ID a container's
        with open(os.path.join(self.pve_lxc, "%d.conf" % CTID), "w") as f:
            f.write("arch: amd64\nhostname: ct%d\nostype: unmanaged\n" % CTID)

    def tearDown(self):
        self.ct.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def ok(self, r):
        self.assertEqual(r.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout, r.stderr))
        # no sanitizer report (make SANITIZE=1)
        self.assertNotIn("AddressSanitizer", r.stderr)
        self.assertNotIn("runtime error", r.stderr)
        return r

    def rules(self, text):
        with open(os.path.join(self.pve_lxc, "%d.usb.conf" % CTID), "w") as f:
            f.write(text)

    def host_node(self, port, numbers=PASSED, mode=0o664):
        """The host's /dev/bus/usb/BBB/DDD of the device at port (its devnum
        as the umockdev tree numbers it): c numbers."""
        devs = sorted(self.host.devices, key=lambda p: p.count("."))
        bus, devnum = int(port.split("-")[0]), devs.index(port) + 2
        d = os.path.join(self.usb_dev, "%03d" % bus)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "%03d" % devnum)
        if os.path.exists(path):
            os.unlink(path)
        os.mknod(path, 0o600 | 0o020000, os.makedev(*numbers))
        os.chmod(path, mode)
        return "/dev/bus/usb/%03d/%03d" % (bus, devnum)

    def node_in_ct(self, node):
        """'TYPE MAJOR:MINOR MODE UID:GID' of node in the container, or None."""
        code, out = self.ct.sh("stat -c '%%F %%t:%%T %%a %%u:%%g' %s" % node)
        if code != 0:
            return None
        kind, numbers, mode, owner = out.strip().rsplit(" ", 3)
        major, minor = (int(x, 16) for x in numbers.split(":"))
        return "%s %d:%d %s %s" % (kind, major, minor, mode, owner)

    def plug(self, port="3-2", numbers=PASSED):
        self.host.plug(port, 0x10C4, 0xEA60, product="Sonoff Zigbee 3.0 USB Dongle Plus")
        return self.host_node(port, numbers)

    LINK = "usb-ITead_Sonoff_Zigbee_3.0_USB_Dongle_Plus_c0ffee-if00-port0"

    def bind_tty(self, port="3-2", name="ttyUSB0", numbers=PASSED):
        """The host's driver binds the interface: its tty appears in sysfs
        and in the host's /dev (the test's), c numbers."""
        self.host.ttys[port] = (name, numbers, self.LINK)
        path = os.path.join(self.dev, name)
        os.mknod(path, 0o660 | 0o020000, os.makedev(*numbers))
        os.chmod(path, 0o660)
        return "/dev/" + name


class Containers(Case):
    def test_check_validates_a_containers_rules(self):
        self.rules("3-2\nid 10c4:ea60\nport 3-99x\n")
        r = self.tool.run(["check", str(CTID)])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%d.usb.conf:3" % CTID, r.stderr)
        self.rules("3-2\nid 10c4:ea60\n")
        self.ok(self.tool.run(["check", str(CTID)]))

    def test_the_shipped_example_is_valid(self):
        examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pve-conf-examples")
        shutil.copy(os.path.join(examples, "%d.usb.conf" % CTID), self.pve_lxc)
        r = self.ok(self.tool.run(["check", str(CTID)]))
        self.assertIn("%d.usb.conf: 4 rule(s), all valid" % CTID, r.stdout)
        self.assertEqual(r.stderr, "")

    def test_plug_passes_the_node_and_unplug_takes_it(self):
        self.rules("3-2\n")
        node = self.plug()
        self.ct.start()
        # before: the container may not make or use the device
        self.assertIsNone(self.node_in_ct(node))
        code, out = self.ct.sh("mknod /tmp/x c %d %d" % PASSED)
        self.assertNotEqual(code, 0)
        self.assertIn("not permitted", out)

        r = self.ok(self.tool.event(self.host, "add", "3-2"))
        self.assertIn("CT %d: passed 3-2" % CTID, r.stderr + r.stdout)
        self.assertEqual(self.node_in_ct(node), "character special file %d:%d 664 0:0" % PASSED)
        # a process in the container reads and writes it
        code, out = self.ct.sh("dd if=%s bs=4 count=1 2>/dev/null | wc -c; echo hi > %s && echo written"
                               % (node, node))
        self.assertEqual(code, 0, out)
        self.assertIn("written", out)
        # what it was not passed stays refused
        code, out = self.ct.sh("mknod /tmp/full c %d %d" % NOT_PASSED)
        self.assertNotEqual(code, 0)
        self.assertIn("not permitted", out)

        gone = self.host.devices["3-2"]
        self.host.unplug("3-2")
        r = self.ok(self.tool.run(host=self.host, env=self.host.event_env("remove", "3-2", gone)))
        self.assertIn("CT %d: detached 3-2" % CTID, r.stderr + r.stdout)
        self.assertIsNone(self.node_in_ct(node))
        # and its permission is withdrawn
        code, out = self.ct.sh("mknod /tmp/again c %d %d && cat /tmp/again" % PASSED)
        self.assertNotEqual(code, 0)
        self.assertIn("not permitted", out)

    def test_a_device_its_rules_do_not_claim_is_not_passed(self):
        self.rules("3-2\n")
        self.host.plug("3-3", 0x1234, 0x5678)
        node = self.host_node("3-3")
        self.ct.start()
        self.ok(self.tool.event(self.host, "add", "3-3"))
        self.assertIsNone(self.node_in_ct(node))

    def test_a_stopped_container_gets_nothing(self):
        self.rules("3-2\n")
        self.plug()
        r = self.ok(self.tool.event(self.host, "add", "3-2"))
        self.assertNotIn("passed", r.stderr + r.stdout)
        self.assertEqual([f for f in os.listdir(self.tool.state_dir) if f.endswith(".ctusb")]
                         if os.path.isdir(self.tool.state_dir) else [], [])

    def test_post_start_passes_what_is_plugged_in(self):
        self.rules("id 10c4:ea60\n")
        node = self.plug()
        self.ct.start()
        r = self.ok(self.tool.run([str(CTID), "post-start"], host=self.host))
        self.assertIn("CT %d: passed 3-2" % CTID, r.stderr + r.stdout)
        self.assertEqual(self.node_in_ct(node), "character special file %d:%d 664 0:0" % PASSED)
        # again: already there, nothing changes
        r = self.ok(self.tool.run([str(CTID), "post-start"], host=self.host))
        self.assertIn("already passed", r.stderr + r.stdout)

        # a new run of the container starts without it; post-start passes it
        # again (daemonized now: its monitor is found by its name)
        self.ct.stop()
        self.ct.start(daemon=True)
        self.assertIsNone(self.node_in_ct(node))
        r = self.ok(self.tool.run([str(CTID), "post-start"], host=self.host))
        self.assertIn("CT %d: passed 3-2" % CTID, r.stderr + r.stdout)
        code, out = self.ct.sh("echo hi > %s && echo written" % node)
        self.assertIn("written", out)

    def test_an_unprivileged_container_gets_the_node_mounted(self):
        self.ct = Container(self.lxcpath, CTID + 1, unprivileged=True)
        with open(os.path.join(self.pve_lxc, "%d.conf" % (CTID + 1)), "w") as f:
            f.write("arch: amd64\nunprivileged: 1\n")
        with open(os.path.join(self.pve_lxc, "%d.usb.conf" % (CTID + 1)), "w") as f:
            f.write("3-2\n")
        node = self.plug()
        self.ct.start()
        code, out = self.ct.sh("cat %s" % node)
        self.assertNotEqual(code, 0)

        r = self.ok(self.tool.event(self.host, "add", "3-2"))
        self.assertIn("CT %d: passed 3-2" % (CTID + 1), r.stderr + r.stdout)
        self.assertIn("owner %d:%d" % (Container.MAPPED, Container.MAPPED), r.stderr + r.stdout)
        # its root owns it (as the container sees it: 0)
        self.assertEqual(self.node_in_ct(node), "character special file %d:%d 664 0:0" % PASSED)
        code, out = self.ct.sh("dd if=%s bs=4 count=1 2>/dev/null | wc -c; echo hi > %s && echo written"
                               % (node, node))
        self.assertEqual(code, 0, out)
        self.assertIn("written", out)
        self.assertEqual(out.split()[0], "4")

        gone = self.host.devices["3-2"]
        self.host.unplug("3-2")
        r = self.ok(self.tool.run(host=self.host, env=self.host.event_env("remove", "3-2", gone)))
        self.assertIn("CT %d: detached 3-2" % (CTID + 1), r.stderr + r.stdout)
        self.assertIsNone(self.node_in_ct(node))
        code, out = self.ct.sh("ls /dev/bus/usb/003")
        self.assertEqual(out.strip(), "")

    def test_sync_applies_changed_rules_and_status_tells(self):
        self.rules("3-2\n")
        node = self.plug()
        self.ct.start()
        # plugged in before the rules were there: sync passes it
        r = self.ok(self.tool.run(["sync", str(CTID)], host=self.host))
        self.assertIn("CT %d: passed 3-2" % CTID, r.stderr + r.stdout)
        self.assertIsNotNone(self.node_in_ct(node))
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertRegex(r.stdout, r"CT %d: running, 1 rule.*holds 1 device" % CTID)
        r = self.ok(self.tool.run(["status", str(CTID), "--json"], host=self.host))
        self.assertIn('"kind": "lxc"', r.stdout.replace('":"', '": "'))
        # the rules keep it out now: sync takes it back
        self.rules("3-2\ndeny id 10c4:ea60\n")
        r = self.ok(self.tool.run(["sync", str(CTID)], host=self.host))
        self.assertIn("CT %d: detached 3-2" % CTID, r.stderr + r.stdout)
        self.assertIsNone(self.node_in_ct(node))
        code, out = self.ct.sh("mknod /tmp/x c %d %d" % PASSED)
        self.assertIn("not permitted", out)

    def test_post_start_with_stdin_closed_as_proxmox_runs_it(self):
        self.rules("3-2\n")
        node = self.plug()
        self.ct.start()
        argv, env = self.tool.cmd([str(CTID), "post-start"], self.host)
        r = self.ok(subprocess.run(["sh", "-c", 'exec 0<&- "$@"', "sh"] + argv, env=env,
                                   capture_output=True, text=True, timeout=60))
        self.assertIn("CT %d: passed 3-2" % CTID, r.stderr + r.stdout)
        self.assertIsNotNone(self.node_in_ct(node))

    def test_release_takes_everything_and_sync_brings_it_back(self):
        self.rules("3-2\n")
        node = self.plug()
        self.ct.start()
        r = self.ok(self.tool.run([str(CTID), "pre-start"], host=self.host))
        self.assertEqual(r.stderr, "")
        self.ok(self.tool.run([str(CTID), "post-start"], host=self.host))
        self.assertIsNotNone(self.node_in_ct(node))
        r = self.ok(self.tool.run(["release", str(CTID)], host=self.host))
        self.assertIn("CT %d: released" % CTID, r.stdout + r.stderr)
        self.assertIsNone(self.node_in_ct(node))
        # events leave it alone now
        self.ok(self.tool.event(self.host, "add", "3-2"))
        self.assertIsNone(self.node_in_ct(node))
        r = self.ok(self.tool.run(["sync", str(CTID)], host=self.host))
        self.assertIsNotNone(self.node_in_ct(node))

    def test_a_link_planted_in_its_dev_is_not_followed(self):
        self.rules("3-2\n")
        node = self.plug()
        self.ct.start()
        outside = os.path.join(self.dir, "outside")
        os.makedirs(outside)
        # the container's root points /dev/bus at a host directory
        self.ct.sh("ln -s %s /dev/bus" % outside)
        r = self.tool.event(self.host, "add", "3-2")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot make /%s" % node.lstrip("/"), r.stderr)
        self.assertEqual(os.listdir(outside), [])


class InterfaceNodes(Case):
    """The nodes host drivers make for a passed device's interfaces: its
    /dev/bus/usb node carries /dev/full's numbers here, the tty /dev/zero's."""

    def test_a_tty_follows_its_device_in_and_out(self):
        self.rules("3-2\n")
        self.plug(numbers=NOT_PASSED)
        self.ct.start()
        self.ok(self.tool.event(self.host, "add", "3-2"))
        self.assertIsNone(self.node_in_ct("/dev/ttyUSB0"))

        tty = self.bind_tty()
        r = self.ok(self.tool.run(host=self.host, env=self.host.tty_env("add", "3-2")))
        self.assertIn("CT %d: passed /dev/ttyUSB0 of 3-2" % CTID, r.stderr + r.stdout)
        self.assertEqual(self.node_in_ct(tty), "character special file %d:%d 660 0:0" % PASSED)
        code, out = self.ct.sh("dd if=%s bs=4 count=1 2>/dev/null | wc -c; echo hi > %s && echo written"
                               % (tty, tty))
        self.assertEqual(code, 0, out)
        self.assertEqual(out.split()[0], "4")
        self.assertIn("written", out)
        # its by-id link, as on the host, leads to it
        code, out = self.ct.sh("readlink /dev/serial/by-id/%s; dd if=/dev/serial/by-id/%s bs=2 count=1"
                               " 2>/dev/null | wc -c" % (self.LINK, self.LINK))
        self.assertEqual(out.split(), [tty, "2"])

        # the driver lets go: the node, its link and the permission go
        env = self.host.tty_env("remove", "3-2")
        del self.host.ttys["3-2"]
        os.unlink(os.path.join(self.dev, "ttyUSB0"))
        r = self.ok(self.tool.run(host=self.host, env=env))
        self.assertIn("CT %d: took /dev/ttyUSB0 back" % CTID, r.stderr + r.stdout)
        self.assertIsNone(self.node_in_ct(tty))
        code, out = self.ct.sh("ls /dev/serial/by-id/")
        self.assertEqual(out.strip(), "")
        code, out = self.ct.sh("mknod /tmp/x c %d %d && cat /tmp/x" % PASSED)
        self.assertNotEqual(code, 0)
        self.assertIn("not permitted", out)
        # the device itself stays passed
        self.assertIsNotNone(self.node_in_ct("/dev/bus/usb/003/002"))

    def test_post_start_passes_the_tty_of_a_device_plugged_in_and_unplug_takes_it(self):
        self.rules("3-2\n")
        self.plug(numbers=NOT_PASSED)
        tty = self.bind_tty()
        self.ct.start()
        r = self.ok(self.tool.run([str(CTID), "post-start"], host=self.host))
        self.assertIn("CT %d: passed /dev/ttyUSB0 of 3-2" % CTID, r.stderr + r.stdout)
        code, out = self.ct.sh("echo hi > %s && echo written; readlink /dev/serial/by-id/%s" % (tty, self.LINK))
        self.assertEqual(out.split(), ["written", tty])

        gone = self.host.devices["3-2"]
        self.host.unplug("3-2")
        r = self.ok(self.tool.run(host=self.host, env=self.host.event_env("remove", "3-2", gone)))
        self.assertIn("CT %d: took /dev/ttyUSB0 back" % CTID, r.stderr + r.stdout)
        self.assertIsNone(self.node_in_ct(tty))
        code, out = self.ct.sh("mknod /tmp/x c %d %d && cat /tmp/x" % PASSED)
        self.assertIn("not permitted", out)

    def test_an_unprivileged_container_gets_the_tty_mounted(self):
        self.ct = Container(self.lxcpath, CTID + 1, unprivileged=True)
        with open(os.path.join(self.pve_lxc, "%d.conf" % (CTID + 1)), "w") as f:
            f.write("arch: amd64\nunprivileged: 1\n")
        with open(os.path.join(self.pve_lxc, "%d.usb.conf" % (CTID + 1)), "w") as f:
            f.write("3-2\n")
        self.plug(numbers=NOT_PASSED)
        self.ct.start()
        self.ok(self.tool.event(self.host, "add", "3-2"))
        tty = self.bind_tty()
        r = self.ok(self.tool.run(host=self.host, env=self.host.tty_env("add", "3-2")))
        self.assertIn("CT %d: passed /dev/ttyUSB0 of 3-2" % (CTID + 1), r.stderr + r.stdout)
        self.assertEqual(self.node_in_ct(tty), "character special file %d:%d 660 0:0" % PASSED)
        code, out = self.ct.sh("echo hi > /dev/serial/by-id/%s && echo written; stat -c %%u /dev/serial/by-id"
                               % self.LINK)
        self.assertEqual(out.split(), ["written", "0"])

        gone = self.host.devices["3-2"]
        self.host.unplug("3-2")
        self.ok(self.tool.run(host=self.host, env=self.host.event_env("remove", "3-2", gone)))
        self.assertIsNone(self.node_in_ct(tty))
        code, out = self.ct.sh("ls /dev/serial/by-id/")
        self.assertEqual(out.strip(), "")

    def test_a_link_planted_in_its_dev_is_not_followed(self):
        self.rules("3-2\n")
        self.plug(numbers=NOT_PASSED)
        self.ct.start()
        self.ok(self.tool.event(self.host, "add", "3-2"))
        outside = os.path.join(self.dir, "outside")
        os.makedirs(outside)
        self.ct.sh("ln -s %s /dev/serial" % outside)
        self.bind_tty()
        r = self.tool.run(host=self.host, env=self.host.tty_env("add", "3-2"))
        self.assertIn("cannot make the link /dev/serial/by-id/%s" % self.LINK, r.stderr)
        self.assertEqual(os.listdir(outside), [])

    def test_a_tty_of_a_device_no_container_holds_ends_at_once(self):
        self.rules("3-2\n")
        self.plug(numbers=NOT_PASSED)
        tty = self.bind_tty()
        # the container does not run: nothing holds 3-2
        r = self.ok(self.tool.run(host=self.host, env=self.host.tty_env("add", "3-2")))
        self.assertEqual(r.stdout + r.stderr, "")
        self.assertIsNone(self.node_in_ct(tty))


def in_own_namespace():
    """Re-executes under unshare -m with a pure cgroup v2 over
    /sys/fs/cgroup, as Proxmox VE has; returns only inside it."""
    if os.environ.get("PUH_LXC_NS") == "1":
        subprocess.run(["mount", "--make-rprivate", "/"], check=True)
        subprocess.run(["mount", "-t", "cgroup2", "-o", "nsdelegate", "cgroup2", "/sys/fs/cgroup"],
                       check=True)
        return
    env = dict(os.environ, PUH_LXC_NS="1")
    sys.exit(subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable]
                            + sys.argv, env=env).returncode)


def main():
    global BINARY
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("-k", dest="pattern", action="append")
    args, rest = ap.parse_known_args()
    BINARY = os.path.abspath(args.binary)
    if os.geteuid() != 0:
        sys.exit("tests/lxc/run.py: needs root (containers, cgroups)")
    for tool in ("lxc-start", "lxc-cgroup", "unshare", "umockdev-run"):
        if not shutil.which(tool):
            sys.exit("tests/lxc/run.py: %s is missing; run tests/deps.sh" % tool)
    in_own_namespace()
    argv = [sys.argv[0]] + rest
    for p in args.pattern or []:
        argv += ["-k", p]
    prog = unittest.main(argv=argv, verbosity=2, exit=False)
    # what LXC leaves in the (host's) cgroup2 hierarchy once its last
    # container stopped: an empty cgroup its monitors moved through
    try:
        os.rmdir("/sys/fs/cgroup/lxc.pivot")
    except OSError:
        pass
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
