#!/usr/bin/env python3
"""End-to-end tests: the built binary, under umockdev, against real QEMU guests.

Each test builds a host USB tree, starts Proxmox-layout guests with their QMP
sockets in a temporary directory, runs the program as Proxmox (hookscript) or
udev (event in the environment) would, and asks the guests over QMP what they
really have.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from fakeqmp import FakeQmp  # noqa: E402
from pvesim import Guest, Host, PlainGuest, Qmp, Tool  # noqa: E402
import libvirtsim  # noqa: E402

BINARY = None


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


class Hookscript(Case):
    def test_post_start_attaches_through_two_hub_levels_on_xhci(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B, product="Receiver")
        self.host.hub("3-4.2")
        self.host.plug("3-4.2.3", 0x0951, 0x1666)
        self.host.hub("3-4.2.4")
        self.host.plug("3-4.2.4.1", 0x1A86, 0x7523)
        self.host.plug("3-5", 0x0781, 0x5581)         # not configured
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2.3", "3-4.2.4.1"])
        hosts = g.usb_hosts()
        # port 15 of Proxmox's xhci, then the tool's own controller
        self.assertEqual(hosts["usbhost3-4.1"], {"hostbus": 3, "hostport": "4.1", "bus": "xhci.0"})
        self.assertEqual(hosts["usbhost3-4.2.4.1"], {"hostbus": 3, "hostport": "4.2.4.1", "bus": "usbhotplug-xhci0.0"})
        self.assertIn("VM 100: added 3-4.1 (046d:c52b \"Receiver\") as usbhost3-4.1 on xhci.0 port 15", r.stdout)
        self.assertEqual(r.stdout.count(" as usbhost"), 3, r.stdout)

    def test_two_digit_bus_and_ports(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "11-12\n")
        self.host.hub("11-12")
        self.host.plug("11-12.10", 0x1111, 0x2222)
        self.host.plug("11-1", 0x1111, 0x3333)
        self.host.plug("1-12", 0x1111, 0x4444)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.usb_hosts(), {"usbhost11-12.10": {"hostbus": 11, "hostport": "12.10", "bus": "xhci.0"}})

    def test_prefix_matches_whole_port_numbers_only(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n3-1\n")
        self.host.plug("3-40", 0x1, 0x1)
        self.host.hub("3-41")
        self.host.plug("3-41.2", 0x1, 0x2)
        self.host.plug("3-14", 0x1, 0x3)
        self.host.plug("3-4", 0x1, 0x4)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4"])

    def test_post_start_twice_attaches_once(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("already attached as usbhost3-4.1", r.stdout)
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2"])

    def test_malformed_line_is_named_and_the_rest_works(self):
        g = self.guest(100)
        conf = self.tool.usb_conf(100, "# desk hub\n\n3-4   # keyboard\n3-x\nport 5-1\n5-2 5-3\n")
        self.host.plug("3-4")
        self.host.plug("5-1")
        self.host.plug("5-2")
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("%s:4: '3-x' is neither a port nor a known rule (expected a port such as 3-4 or 3-4.1, or port, path, id, serial, disk, deny); line ignored" % conf, r.stderr)
        self.assertIn("%s:6: unexpected text after the rule; one rule a line; line ignored" % conf, r.stderr)
        self.assertEqual(g.ports(), ["3-4", "5-1"])

    def test_pre_start_warns_but_never_fails(self):
        conf = self.tool.usb_conf(100, "3-4\nbogus\n")
        r = self.ok(self.tool.run(["100", "pre-start"]))
        self.assertIn("%s:2: 'bogus' is neither a port" % conf, r.stderr)
        self.assertIn("%s: 1 bad line(s), 1 good rule(s); fix the lines named above" % conf, r.stderr)
        with open(self.tool.config, "a") as f:
            f.write("bogus = 1\n")
        r = self.ok(self.tool.run(["100", "pre-start"]))
        self.assertIn("USB hot-plug will not work until then", r.stderr)

    def test_other_phases_and_vm_without_conf_do_nothing(self):
        g = self.guest(100)
        self.host.plug("3-4")
        for phase in ("pre-stop", "post-stop", "post-start"):
            r = self.ok(self.tool.run(["100", phase], host=self.host))
            self.assertEqual(r.stdout + r.stderr, "")
        self.assertEqual(g.ports(), [])

    def test_post_start_of_a_stopped_vm_fails_with_a_message(self):
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("VM 100 is not running (no QMP socket at %s/100.qmp)" % self.tool.qmp_dir, r.stderr)



class Udev(Case):
    def test_add_and_remove(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.hub("3-4.3")
        d = self.host.plug("3-4.3.1", 0x046D, 0xC52B)
        r = self.ok(self.tool.event(self.host, "add", "3-4.3.1"))
        self.assertIn("VM 100: added 3-4.3.1 (046d:c52b) as usbhost3-4.3.1 on xhci.0", r.stdout)
        self.assertEqual(g.usb_hosts(), {"usbhost3-4.3.1": {"hostbus": 3, "hostport": "4.3.1", "bus": "xhci.0"}})
        self.host.unplug("3-4.3.1")
        r = self.ok(self.tool.event(self.host, "remove", "3-4.3.1", dev=d))
        self.assertIn("VM 100: detached 3-4.3.1 (046d:c52b) (usbhost3-4.3.1)", r.stdout)
        self.assertEqual(g.ports(), [])
        # a second remove (or one for a device never attached) is fine
        self.ok(self.tool.event(self.host, "remove", "3-4.3.1", dev=d))

    def test_a_remove_while_the_rules_cannot_be_read_still_detaches(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        vm_dir = self.tool.vm_dir
        for i, gone in enumerate(("missing", "broken")):
            port = "3-4.%d" % (i + 1)
            d = self.host.plug(port, 0x046D, 0xC52B)
            self.ok(self.tool.event(self.host, "add", port))
            self.assertEqual(g.ports(), [port])
            if gone == "missing":       # pmxcfs restarting: ENOENT
                os.rename(vm_dir, vm_dir + ".away")
                why = "No such file or directory"
            else:                       # stands for a crashed pmxcfs (ENOTCONN)
                os.rename(vm_dir, vm_dir + ".away")
                open(vm_dir, "w").close()
                why = "Not a directory"
            self.host.unplug(port)
            r = self.ok(self.tool.event(self.host, "remove", port, dev=d))
            self.assertIn("cannot read the rules in %s (%s); the device's removal is handled by the tool's own records" % (vm_dir, why), r.stdout + r.stderr)
            self.assertIn("VM 100: detached %s (046d:c52b) (usbhost%s)" % (port, port), r.stdout)
            self.assertEqual(g.ports(), [])
            if os.path.isfile(vm_dir):
                os.unlink(vm_dir)
            os.rename(vm_dir + ".away", vm_dir)

    def test_listen_attaches_what_udev_announces(self):
        # pve-usb-hotplug.service: udev's announcement, a child per plug
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        new = Host(self.dir)
        new.plug("3-4.2", 0x046D, 0xC52B)
        marker = os.path.join(self.tool.state_dir, "listening")
        r = self.ok(self.tool.run_while_plugging(["listen", "--events", "1"], self.host, new,
                                                 marker="listening for USB devices plugged in"))
        # it would hold the running VM's port; the simulated host has no
        # usbfs file for the root hub, and that is said, and nothing is
        # said to be held (the real-host suite shows the holding itself)
        self.assertNotIn("holding port", r.stdout)
        self.assertIn("warning: cannot hold the ports of hub usb3 (/dev/bus/usb/003/001: No such file or directory): "
                      "the host's drivers take what is plugged there first, and QEMU takes it from them", r.stderr)
        self.assertIn("VM 100: added 3-4.2 (046d:c52b) as usbhost3-4.2 on xhci.0 port 15", r.stdout)
        self.assertEqual(g.ports(), ["3-4.2"])
        # the marker that keeps the rule's service aside is gone with it
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(self.tool.run(["listen", "--events", "0"]).returncode, 2)

    def test_a_stopped_listener_hands_over_at_once_and_finishes_its_plugs(self):
        # systemctl restart (every package upgrade): the rule's unit takes
        # plugs over the moment the listener stops listening, and a plug
        # being handled is finished, not cut off
        import fcntl
        import signal
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.ok(self.tool.run(["sync", "100"], host=self.host))    # the state directory
        lock = open(os.path.join(self.tool.state_dir, "100.lock"), "a")
        self.addCleanup(lock.close)
        fcntl.flock(lock, fcntl.LOCK_EX)        # the plug's child waits for VM 100
        new = Host(self.dir)
        new.plug("3-4.2", 0x046D, 0xC52B)
        argv, env = self.tool.cmd(["listen"])
        tree, extra = self.host.write(), new.write("new.umockdev", roots=False)
        p = subprocess.Popen(["umockdev-wrapper", self.tool.plug_helper, tree, extra,
                              "listening for USB devices plugged in", "--"] + argv,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        marker = os.path.join(self.tool.state_dir, "listening")

        def wait_for(cond, what, seconds=20):
            deadline = time.monotonic() + seconds
            while not cond():
                self.assertLess(time.monotonic(), deadline, what)
                time.sleep(0.02)
        wait_for(lambda: os.path.exists(marker), "the listener's marker")
        with open(marker) as f:
            pid = int(f.read())

        def children():
            r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
            return [int(c) for c in r.stdout.split()]
        wait_for(children, "a child handling the plug")
        child = children()[0]
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not os.path.exists(marker), "the marker gone at once", 5)
        self.assertTrue(os.path.exists("/proc/%d" % child), "the child still works on its plug")
        fcntl.flock(lock, fcntl.LOCK_UN)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("VM 100: added 3-4.2 (046d:c52b) as usbhost3-4.2 on xhci.0 port 15", out)
        self.assertEqual(g.ports(), ["3-4.2"])

    def test_plugged_as_the_systemd_service_runs_it(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.2", 0x046D, 0xC52B)
        r = self.ok(self.tool.run(["plugged", "3-4.2"], host=self.host))
        self.assertIn("VM 100: added 3-4.2 (046d:c52b) as usbhost3-4.2 on xhci.0 port 15", r.stdout)
        self.assertEqual(g.ports(), ["3-4.2"])
        # a hub, a device gone again, and a name that is no device
        self.assertEqual(self.ok(self.tool.run(["plugged", "3-4"], host=self.host)).stdout, "")
        r = self.ok(self.tool.run(["plugged", "3-4.7"], host=self.host))
        self.assertIn("3-4.7 is gone again before it could be attached; nothing to do", r.stdout)
        r = self.tool.run(["plugged", "3-4:1.0"], host=self.host)
        self.assertEqual(r.returncode, 1)
        self.assertIn("'3-4:1.0' is not a USB device such as 3-4 or 3-4.1", r.stderr)
        self.assertEqual(self.tool.run(["plugged"]).returncode, 2)

    def test_hub_events_and_unclaimed_and_interfaces_touch_no_socket(self):
        # a listener that only counts connections stands in for the VM
        self.tool.usb_conf(100, "3-4\n")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(os.path.join(self.tool.qmp_dir, "100.qmp"))
        listener.listen(8)
        listener.setblocking(False)
        self.addCleanup(listener.close)
        hub = self.host.hub("3-4")
        dev = self.host.plug("3-4.1")
        self.host.plug("3-5")
        self.ok(self.tool.event(self.host, "add", "3-4"))                  # hub
        self.ok(self.tool.event(self.host, "add", "3-4.1", interface=0))   # interface
        self.ok(self.tool.event(self.host, "remove", "3-4.1", interface=0))
        self.ok(self.tool.event(self.host, "add", "3-5"))                  # nobody's
        for action in ("bind", "unbind", "change"):
            self.ok(self.tool.event(self.host, action, "3-4.1"))
        self.host.unplug("3-4")
        self.ok(self.tool.event(self.host, "remove", "3-4", dev=hub))
        with self.assertRaises(BlockingIOError):
            listener.accept()
        self.assertIsNotNone(dev)

    def test_hub_without_type_in_environment_is_recognised_from_sysfs(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        env = self.host.event_env("add", "3-4")
        del env["TYPE"]
        self.ok(self.tool.run(host=self.host, env=env))
        self.assertEqual(g.ports(), [])

    def test_two_vms_with_different_ports(self):
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-5\n")
        self.host.hub("3-4")
        self.host.hub("3-5")
        for p in ("3-4.1", "3-4.2", "3-5.1"):
            self.host.plug(p)
            self.ok(self.tool.event(self.host, "add", p))
        self.assertEqual(a.ports(), ["3-4.1", "3-4.2"])
        self.assertEqual(b.ports(), ["3-5.1"])
        d = self.host.devices["3-4.2"]
        self.host.unplug("3-4.2")
        self.ok(self.tool.event(self.host, "remove", "3-4.2", dev=d))
        self.assertEqual(a.ports(), ["3-4.1"])
        self.assertEqual(b.ports(), ["3-5.1"])

    def test_deeper_rule_wins_between_running_vms(self):
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-4.2\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        for p in ("3-4.1", "3-4.2"):
            self.ok(self.tool.event(self.host, "add", p))
        self.assertEqual(a.ports(), ["3-4.1"])
        self.assertEqual(b.ports(), ["3-4.2"])

    def test_equal_claims_attach_to_neither(self):
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-4\n")
        self.host.plug("3-4", 0x1, 0x2)
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("3-4 (0001:0002) is claimed equally by VM 100", r.stderr)
        self.assertEqual(a.ports() + b.ports(), [])

    def test_vm_not_running_is_quick_and_succeeds(self):
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        t = time.monotonic()
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertLess(time.monotonic() - t, 5)   # generous: proves no wait on a deadline
        self.assertIn("no running VM claims it", r.stdout)
        # a stale socket nobody listens on
        s = socket.socket(socket.AF_UNIX)
        s.bind(os.path.join(self.tool.qmp_dir, "100.qmp"))
        s.close()
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("no running VM claims it", r.stdout)

    def test_busy_socket_is_waited_for_then_given_up(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n3-5\n")
        self.host.plug("3-4")
        self.host.plug("3-5")
        self.tool.write_settings(timeout_ms=1500)

        holder = Qmp(g.qmp_path)
        threading.Timer(0.5, holder.close).start()
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(g.ports(), ["3-4"])

        holder = Qmp(g.qmp_path)
        try:
            t = time.monotonic()
            r = self.failed(self.tool.event(self.host, "add", "3-5"))
            self.assertLess(time.monotonic() - t, 10)
        finally:
            holder.close()
        self.assertIn("VM 100: no answer on %s within 1500 ms: another client" % g.qmp_path, r.stderr)
        self.assertEqual(g.ports(), ["3-4"])
        self.ok(self.tool.event(self.host, "add", "3-5"))     # the next event repairs it
        self.assertEqual(g.ports(), ["3-4", "3-5"])

    def test_parallel_events_for_one_vm_are_all_applied(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        ports = ["3-4.%d" % i for i in range(1, 11)]
        for p in ports:
            self.host.plug(p)
        tree = self.host.write()
        import subprocess
        procs = []
        for p in ports:
            argv, env = self.tool.cmd([], env=self.host.event_env("add", p))
            procs.append(subprocess.Popen(["umockdev-run", "--device", tree, "--"] + argv, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for pr in procs:
            out, err = pr.communicate(timeout=60)
            self.assertEqual(pr.returncode, 0, err)
        self.assertEqual(sorted(g.ports()), sorted(ports))


class Settings(Case):
    def test_bad_settings_name_file_and_line(self):
        self.tool.write_settings(extra="[qmp]\ntimeout_ms = soon\n[paths]\ncolour = blue\n")
        self.tool.usb_conf(100, "3-4\n")
        r = self.failed(self.tool.run(["100", "post-start"]))
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s:13: timeout_ms must be a whole number of milliseconds from 10 to 600000 (got 'soon')" % self.tool.config, r.stderr)
        self.assertIn("%s:15: unknown key 'colour' in section [paths]" % self.tool.config, r.stderr)

    def test_help_and_version_and_usage(self):
        r = self.ok(self.tool.run(["--help"]))
        self.assertIn("pve-usb-hotplug VMID PHASE", r.stdout)
        r = self.ok(self.tool.run(["--version"]))
        self.assertRegex(r.stdout, r"^pve-usb-hotplug \d+\.\d+")
        r = self.tool.run(["1", "post-start"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("'1' is not a VM id", r.stderr)
        self.assertEqual(self.tool.run(["a"]).returncode, 2)


class Check(Case):
    def test_check_reports_every_bad_line_and_fails(self):
        a = self.tool.usb_conf(100, "3-4\n")
        b = self.tool.usb_conf(101, "3-4\nport\n3-4.x\n")
        r = self.failed(self.tool.run(["check"]))
        self.assertIn("%s: 1 rule(s), all valid" % a, r.stdout)
        self.assertIn("%s:2: 'port' needs a value, e.g. 'port 3-4'; line ignored" % b, r.stderr)
        self.assertIn("%s:3: '3-4.x' is neither a port" % b, r.stderr)
        self.assertIn("%s: 2 bad line(s), 1 good rule(s)" % b, r.stderr)
        self.ok(self.tool.run(["check", "100"]))
        r = self.failed(self.tool.run(["check", "102"]))
        self.assertIn("VM 102 has no %s/102.usb.conf" % self.tool.vm_dir, r.stderr)

    def test_control_bytes_and_unknown_keyless_sections_are_named(self):
        a = self.tool.usb_conf(100, "disk \x01\x1bX\nserial \x07abc\nserial \"\\x07abc\"\n")
        r = self.failed(self.tool.run(["check", "100"]))
        for line, byte in ((1, "01"), (2, "07")):
            self.assertIn("%s:%d: a control byte (0x%s) in the line; write such a byte as \\xHH inside double quotes; line ignored"
                          % (a, line, byte), r.stderr)
        self.assertIn("%s: 2 bad line(s), 1 good rule(s)" % a, r.stderr)
        # a typo of the keyless [xen NAME]: the guest would never get a device
        self.tool.usb_conf(100, "3-4\n")
        self.tool.write_settings(extra="[xem win11]\n")
        r = self.failed(self.tool.run(["check"]))
        self.assertRegex(r.stderr, re.escape(self.tool.config) + r":\d+: unknown section \[xem win11\]; known: \[paths\], ")

    def test_files_that_are_not_plain_text_files_are_refused(self):
        g = self.guest(100)
        self.host.plug("3-4")
        elsewhere = os.path.join(self.dir, "elsewhere.conf")
        with open(elsewhere, "w") as f:
            f.write("3-4\n")
        link = os.path.join(self.tool.vm_dir, "100.usb.conf")
        os.symlink(elsewhere, link)
        r = self.failed(self.tool.run(["check", "100"]))
        self.assertIn("%s: is a symbolic link; write the rules into the file itself" % link, r.stderr)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), [])      # nothing from a linked file
        os.unlink(link)
        with open(link, "w") as f:
            f.write("#" * (1024 * 1024 + 1))
        r = self.failed(self.tool.run(["check", "100"]))
        self.assertIn("%s: larger than the 1048576 bytes a rules file may have" % link, r.stderr)
        os.unlink(link)
        os.mkdir(link)
        r = self.failed(self.tool.run(["check", "100"]))
        self.assertIn("%s: not a regular file" % link, r.stderr)
        os.unlink(self.tool.config)
        os.mkdir(self.tool.config)
        r = self.tool.run(["100", "post-start"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s: not a regular file" % self.tool.config, r.stderr)

    def test_shipped_examples_are_valid(self):
        examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pve-conf-examples")
        shutil.copy(os.path.join(examples, "100.usb.conf"), self.tool.vm_dir)
        shutil.copy(os.path.join(examples, "100.conf"), self.tool.vm_dir)
        # the shipped settings file as it is, then only the paths pointed here
        with open(os.path.join(examples, "pve-usb-hotplug.conf")) as f:
            shipped = f.read()
        with open(self.tool.config) as f:
            ours = f.read()
        with open(self.tool.config, "w") as f:
            f.write(shipped + "\n" + ours)
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("%s: valid" % self.tool.config, r.stdout)
        self.assertIn("100.usb.conf: 8 rule(s), all valid", r.stdout)
        self.assertEqual(r.stderr, "")
        with open(os.path.join(examples, "100.conf")) as f:
            self.assertIn("\nhookscript: local:snippets/pve-usb-hotplug\n", f.read())


class Rules(Case):
    """Every rule kind, attached by hostbus + hostport, and which VM wins."""

    def attached(self, g):
        """{id: "BUS-PORT"} as QEMU really has it."""
        return {k: "%d-%s" % (v["hostbus"], v["hostport"]) for k, v in g.usb_hosts().items()}

    def test_path_rule_follows_the_controller_not_the_bus_number(self):
        g = self.guest(100)
        self.host.pci = {3: "0000:00:14.0", 4: "0000:00:1d.0"}
        self.tool.usb_conf(100, "path pci-0000:00:14.0-usb-0:4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.2", 0x1A86, 0x7523)
        self.host.plug("4-4", 0x1A86, 0x7524)           # port 4, another controller
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.attached(g), {"usbhost3-4.2": "3-4.2"})
        # after a reboot the controller's bus is 7: the rule still finds it
        g.stop()
        g = self.guest(100)
        self.host = Host(self.dir)
        self.host.pci = {7: "0000:00:14.0", 3: "0000:00:1d.0"}
        self.host.hub("7-4")
        self.host.plug("7-4.2", 0x1A86, 0x7523)
        self.host.plug("3-4", 0x1A86, 0x7524)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.attached(g), {"usbhost7-4.2": "7-4.2"})
        self.host.plug("7-4.3", 0x1A86, 0x7525)
        self.ok(self.tool.event(self.host, "add", "7-4.3"))
        self.assertEqual(g.ports(), ["7-4.2", "7-4.3"])

    def test_id_rules_on_any_port(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "id 046d:c52b\nid 0483:*\n")
        self.host.plug("1-1", 0x046D, 0xC52B)
        self.host.hub("2-3")
        self.host.plug("2-3.1", 0x0483, 0x5740)
        self.host.plug("2-3.2", 0x0483, 0x3748)
        self.host.plug("1-2", 0x046D, 0xC52C)           # another product of the vendor
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.attached(g), {"usbhost1-1": "1-1", "usbhost2-3.1": "2-3.1",
                                            "usbhost2-3.2": "2-3.2"})
        self.host.plug("5-1", 0x046D, 0xC52B)
        self.ok(self.tool.event(self.host, "add", "5-1"))
        self.assertIn("usbhost5-1", g.usb_hosts())

    def test_serial_picks_one_of_two_identical_boards(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "serial B2 id 0483:5740\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x0483, 0x5740, serial="A1")
        b = self.host.plug("3-4.2", 0x0483, 0x5740, serial="B2")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.attached(g), {"usbhost3-4.2": "3-4.2"})
        # removal: sysfs is gone, the serial unknown; the port says which
        self.host.unplug("3-4.2")
        self.ok(self.tool.event(self.host, "remove", "3-4.2", dev=b))
        self.assertEqual(g.ports(), [])
        # plugged in elsewhere, it follows
        self.host.plug("1-7", 0x0483, 0x5740, serial="B2")
        self.ok(self.tool.event(self.host, "add", "1-7"))
        self.assertEqual(self.attached(g), {"usbhost1-7": "1-7"})
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertEqual(g.ports(), ["1-7"])

    def test_deny_wins_inside_the_file(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\ndeny 3-4.4        # the host's boot disk\ndeny id 0bda:*\n"
                                "serial KEEP\ndeny serial KEEP\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B)
        self.host.plug("3-4.4", 0x0781, 0x5581)
        self.host.plug("3-4.2", 0x0BDA, 0x8153)
        self.host.plug("3-4.3", 0x1111, 0x2222, serial="KEEP")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4.1"])
        for p in ("3-4.4", "3-4.2", "3-4.3"):
            self.ok(self.tool.event(self.host, "add", p))
        self.assertEqual(g.ports(), ["3-4.1"])

    def test_serial_beats_id_beats_port_between_running_vms(self):
        a, b, c = self.guest(100), self.guest(101), self.guest(102)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "id 1234:5678\n")
        self.tool.usb_conf(102, "serial S1\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x1234, 0x5678, serial="S1")
        self.host.plug("3-4.2", 0x1234, 0x5678, serial="S2")
        self.host.plug("3-4.3", 0x1111, 0x2222, serial="S1x")
        for p in ("3-4.1", "3-4.2", "3-4.3"):
            self.ok(self.tool.event(self.host, "add", p))
        self.assertEqual((a.ports(), b.ports(), c.ports()), (["3-4.3"], ["3-4.2"], ["3-4.1"]))
        # a stopped VM does not compete: its device goes to the next best
        c.stop()
        self.host.plug("3-4.5", 0x1234, 0x5678, serial="S1")
        self.ok(self.tool.event(self.host, "add", "3-4.5"))
        self.assertEqual(b.ports(), ["3-4.2", "3-4.5"])

    def test_equal_claims_give_one_line_naming_both_vms(self):
        a, b = self.guest(100), self.guest(101)
        pa = self.tool.usb_conf(100, "id 1234:5678\n")
        pb = self.tool.usb_conf(101, "3-4\nid 1234:5678\n")
        self.host.plug("3-4", 0x1234, 0x5678, product="Board")
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(r.stderr, "pve-usb-hotplug: error: 3-4 (1234:5678 \"Board\") is claimed equally by "
                         "VM 100 (%s) and VM 101 (%s), both running: attached to neither; make one rule "
                         "more specific\n" % (pa, pb))
        self.assertEqual(a.ports() + b.ports(), [])
        r = self.failed(self.tool.run(["101", "post-start"], host=self.host))
        self.assertEqual(r.stderr.count("claimed equally"), 1, r.stderr)
        self.assertEqual(a.ports() + b.ports(), [])

    def test_what_proxmox_passes_is_left_to_proxmox(self):
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.vm_conf(100, "name: desk\nusb0: host=046d:c52b,usb3=1\nhookscript: local:snippets/pve-usb-hotplug\n"
                               "[snap]\nusb1: host=3-4.3\n")
        self.tool.vm_conf(101, "usb0: host=3-4.2\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B)
        self.host.plug("3-4.2", 0x1111, 0x0001)
        self.host.plug("3-4.3", 0x1111, 0x0002)          # only in a snapshot: ours
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("3-4.1 (046d:c52b) is passed by Proxmox itself (usb0 in VM 100's config); left to Proxmox", r.stdout)
        self.assertIn("3-4.2 (1111:0001) is passed by Proxmox itself (usb0 in VM 101's config); left to Proxmox", r.stdout)
        self.assertEqual(a.ports(), ["3-4.3"])
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertIn("left to Proxmox", r.stdout)
        self.assertEqual(a.ports() + b.ports(), ["3-4.3"])
        # VM 101 stopped: its usb0 no longer matters
        b.stop()
        self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertEqual(a.ports(), ["3-4.2", "3-4.3"])

    def test_a_starting_vm_takes_only_what_no_other_running_vm_holds(self):
        a = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-4.1\n")               # more specific, but not running yet
        self.host.hub("3-4")
        d = self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(a.ports(), ["3-4.1", "3-4.2"])
        b = self.guest(101)
        r = self.ok(self.tool.run(["101", "post-start"], host=self.host))
        self.assertIn("3-4.1 (1234:5678) stays with VM 100, which has it now ('port 3-4',", r.stdout)
        self.assertEqual((a.ports(), b.ports()), (["3-4.1", "3-4.2"], []))
        # plugged out and in again: now the more specific rule wins
        self.host.unplug("3-4.1")
        self.ok(self.tool.event(self.host, "remove", "3-4.1", dev=d))
        self.host.plug("3-4.1")
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertEqual((a.ports(), b.ports()), (["3-4.2"], ["3-4.1"]))

    def test_hostile_device_strings(self):
        g = self.guest(100)
        nasty = b'q"uote\\ back\nnew %n%s%x \x01\x7f\xff\xfe' + b"\xc3\xa9" + b"x" * 200
        self.tool.usb_conf(100, 'serial "%s"\n' % "".join(
            "\\x%02x" % c if c < 0x20 or c >= 0x7f or c in b'"\\' else chr(c) for c in nasty))
        self.host.plug("3-4", 0x1, 0x1, product=nasty, serial=nasty)
        self.host.plug("3-5", 0x1, 0x1, product=b"A" * 4096, serial=nasty[:-1])
        self.host.plug("3-6", 0x1, 0x1, serial=nasty + b"y")
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("1 rule(s), all valid", r.stdout)
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4"])
        self.assertIn('added 3-4 (0001:0001 "q\\"uote\\\\ back\\x0anew %n%s%x \\x01\\x7f\\xff\\xfe\\xc3\\xa9xxx', r.stdout)
        self.assertNotIn("\x01", r.stdout + r.stderr)
        r = self.ok(self.tool.event(self.host, "add", "3-5"))
        self.assertEqual(g.ports(), ["3-4"])
        r = self.ok(self.tool.run(["status", "--json"], host=self.host))
        status = json.loads(r.stdout)
        dev = {d["port"]: d for d in status["devices"]}
        self.assertEqual(dev["3-4"]["state"], "waiting")
        # not UTF-8: shown escaped, as in the log
        self.assertEqual(dev["3-4"]["serial"], 'q\\"uote\\\\ back\\x0anew %n%s%x \\x01\\x7f\\xff\\xfe\\xc3\\xa9' + "x" * 200)
        self.assertEqual(dev["3-5"]["product"], "")      # longer than any real device string: dropped
        self.assertEqual(dev["3-6"]["state"], "unclaimed")
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertNotIn("\n new", r.stdout)


class Commands(Case):
    """What the operator runs: status, sync, identify, check."""

    def scenario(self):
        """Two running VMs, one stopped, Proxmox's own passthrough, a conflict."""
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\ndeny 3-4.5\n")
        self.tool.usb_conf(101, "3-4.2\nid 0951:*\n")
        self.tool.usb_conf(102, "serial STOPPED\n")
        self.tool.usb_conf(103, "3-6\n")
        self.tool.usb_conf(104, "3-6\n")
        self.guest(103)
        self.guest(104)
        self.tool.vm_conf(101, "usb0: host=abcd:0001\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B, product="Receiver", speed="12")
        self.host.hub("3-4.2")
        self.host.plug("3-4.2.1", 0x0483, 0x5740, product="Board", serial="S1")
        self.host.plug("3-4.3", 0xABCD, 0x0001)          # Proxmox's
        self.host.plug("3-4.5", 0x0781, 0x5581)          # denied
        self.host.plug("3-5", 0x0951, 0x1666, speed="5000")
        self.host.plug("3-6", 0x2222, 0x3333)            # conflict
        self.host.plug("3-7", 0x3333, 0x4444, serial="STOPPED")
        self.host.plug("3-8", 0x4444, 0x5555)            # nobody's
        return a, b

    def test_status_json_matches_what_the_guests_have(self):
        a, b = self.scenario()
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.ok(self.tool.run(["101", "post-start"], host=self.host))
        a.qmp("device_del", id="usbhost3-4.1")           # gone behind the tool's back
        r = self.ok(self.tool.run(["status", "--json"], host=self.host))
        st = json.loads(r.stdout)
        dev = {d["port"]: d for d in st["devices"]}
        self.assertEqual(sorted(dev), ["3-4", "3-4.1", "3-4.2", "3-4.2.1", "3-4.3", "3-4.5", "3-5", "3-6",
                                       "3-7", "3-8"])
        states = {p: d["state"] for p, d in dev.items()}
        # QEMU cannot open a simulated device: what the VMs hold is "waiting"
        # (the real-host suite sees "attached", open)
        self.assertEqual(states, {"3-4": "hub", "3-4.1": "not-attached", "3-4.2": "hub",
                                  "3-4.2.1": "waiting", "3-4.3": "proxmox", "3-4.5": "denied", "3-5": "waiting",
                                  "3-6": "conflict", "3-7": "not-running", "3-8": "unclaimed"})
        self.assertEqual({p for p, d in dev.items() if d["open"]}, set())
        # every one held is what QEMU says, on the VM the status names
        held = {100: a.ports(), 101: b.ports()}
        for p, d in dev.items():
            self.assertEqual(d["held_by"], [str(v) for v in (100, 101) if p in held[v]], p)
            if d["state"] in ("attached", "waiting"):
                self.assertIn(p, held[d["claim"]["vmid"]])
        self.assertEqual(dev["3-4.2.1"]["claim"], {"vmid": 101, "guest": "101", "kind": "proxmox", "label": "VM 101",
                                                    "rule": "port 3-4.2", "line": 1,
                                                    "file": os.path.join(self.tool.vm_dir, "101.usb.conf")})
        self.assertEqual(dev["3-5"]["claim"]["rule"], "id 0951:*")
        self.assertEqual(dev["3-4.3"]["claim"], {"vmid": 101, "guest": "101", "kind": "proxmox", "label": "VM 101",
                                                  "proxmox_usb": 0, "proxmox_mapping": None})
        self.assertEqual((dev["3-6"]["claim"]["rival"], dev["3-6"]["claim"]["rival_label"]), ("104", "VM 104"))
        self.assertEqual(dev["3-7"]["claim"]["vmid"], 102)
        self.assertEqual(dev["3-4.2.1"]["path"], "pci-0000:00:03.0-usb-0:4.2.1")
        self.assertEqual((dev["3-4.2.1"]["product"], dev["3-4.2.1"]["serial"], dev["3-5"]["speed"]),
                         ("Board", "S1", "5000"))
        vms = {v["vmid"]: v for v in st["vms"]}
        self.assertEqual(vms[100]["holds"], a.ports())
        self.assertEqual(vms[101]["holds"], b.ports())
        self.assertFalse(vms[102]["running"])
        # the same as text, a tree
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertIn("Bus 3  pci-0000:00:03.0\n", r.stdout)
        self.assertRegex(r.stdout, r"\n    3-4.1 +046d:c52b +12M  \"Receiver\" +VM 100: NOT attached \('port 3-4', 100.usb.conf:1\)")
        self.assertRegex(r.stdout, r"\n      3-4.2.1 +0483:5740 +480M  \"Board\" +VM 101: added, not open yet \('port 3-4.2', 101.usb.conf:1\)")
        self.assertIn("VM 101: passed by Proxmox itself (usb0)", r.stdout)
        self.assertIn("denied to VM 100 ('deny port 3-4.5', 100.usb.conf:2)", r.stdout)
        self.assertIn("VM 103 and VM 104 claim it equally: attached to neither", r.stdout)
        # one VM: its devices and the hubs above them
        r = self.ok(self.tool.run(["status", "101", "--json"], host=self.host))
        self.assertEqual([d["port"] for d in json.loads(r.stdout)["devices"]],
                         ["3-4", "3-4.2", "3-4.2.1", "3-5"])

    def test_sync_repairs_a_stale_and_a_missing_device(self):
        a, b = self.scenario()
        self.tool.usb_conf(100, "3-4\ndeny 3-4.3\ndeny 3-4.5\n")
        for dev_id, port in (("usbhost3-9", "9"), ("usbhost3-4.1", "4.1"), ("usbhost3-4.3", "4.3"),
                             ("mine", "4.1")):
            a.qmp("device_add", driver="usb-host", id=dev_id, hostbus=3, hostport=port, bus="xhci.0")
        self.host.plug("3-4.4", 0x1, 0x2)                # missing in VM 100
        r = self.ok(self.tool.run(["sync", "100"], host=self.host))
        self.assertIn("VM 100: detached 3-9 (usbhost3-9): no device is plugged in there any more", r.stdout)
        self.assertIn("VM 100: detached 3-4.3 (usbhost3-4.3): no rule of this VM claims it any more", r.stdout)
        # one added by hand, pinned to nothing, is replaced by a pinned one
        self.assertIn("VM 100: usbhost3-4.1 was left for 0000:0000, and 3-4.1 (046d:c52b \"Receiver\") is plugged in there now: detached it first", r.stdout)
        self.assertIn("VM 100: added 3-4.4 (0001:0002) as usbhost3-4.4 on usbhotplug-xhci0.0", r.stdout)
        self.assertEqual(sorted(a.usb_hosts()), ["mine", "usbhost3-4.1", "usbhost3-4.4"])
        self.assertEqual(b.ports(), [])                  # only the VM named
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertIn("VM 100: in sync; it holds 2 device(s) through pve-usb-hotplug", r.stdout)
        self.assertEqual(b.ports(), ["3-4.2.1", "3-5"])
        self.assertIn("3-6 (2222:3333) is claimed equally by VM 103", r.stderr)
        self.assertEqual(r.stdout.count(" as usbhost"), 2, r.stdout)
        # a device that moved to a more specific VM's rule is taken from the holder only when unheld
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertNotIn(" as usbhost", r.stdout)
        self.assertNotIn("detached", r.stdout)
        r = self.failed(self.tool.run(["sync", "102"], host=self.host))
        self.assertIn("VM 102 is not running; nothing to sync", r.stderr)

    def test_sync_takes_back_what_a_vm_holds_without_rules(self):
        a = self.guest(100)
        a.qmp("device_add", driver="usb-host", id="usbhost3-4", hostbus=3, hostport="4", bus="xhci.0")
        self.host.plug("3-4")
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertIn("no running VM has a .usb.conf", r.stdout)
        self.assertEqual(a.ports(), ["3-4"])             # not named, no rules: untouched
        r = self.ok(self.tool.run(["sync", "100"], host=self.host))
        self.assertIn("VM 100: detached 3-4 (usbhost3-4): no rule of this VM claims it any more", r.stdout)
        self.assertEqual(a.ports(), [])

    def test_identify_prints_the_lines_for_the_next_device(self):
        self.host.hub("3-4")
        new = Host(self.dir)
        new.pci = {3: "0000:00:14.0"}
        self.host.pci = new.pci
        new.plug("3-4.2", 0x0483, 0x5740, product="Board", serial=b'A "1"\nB', speed="12")
        r = self.ok(self.tool.run_while_plugging(["identify", "--timeout", "20"], self.host, new))
        self.assertIn("Plugged in: 3-4.2\n", r.stdout)
        self.assertIn("  path:     pci-0000:00:14.0-usb-0:4.2\n", r.stdout)
        self.assertIn("  serial:   \"A \\\"1\\\"\\x0aB\"\n", r.stdout)
        lines = [l.split("#")[0].strip() for l in r.stdout.splitlines()[-4:]]
        self.assertEqual(lines, ["port 3-4.2", "path pci-0000:00:14.0-usb-0:4.2", "id 0483:5740",
                                 "serial \"A \\\"1\\\"\\x0aB\" id 0483:5740"])
        # each printed line, put into a .usb.conf, selects the device
        g = self.guest(100)
        self.host.plug("3-4.2", 0x0483, 0x5740, serial=b'A "1"\nB')
        for line in lines:
            self.tool.usb_conf(100, line + "\n")
            self.ok(self.tool.run(["100", "post-start"], host=self.host))
            self.assertEqual(g.ports(), ["3-4.2"], line)
            g.qmp("device_del", id="usbhost3-4.2")
        # a hub is named and waited past; nothing at all is a clear timeout
        hub = Host(self.dir)
        hub.hub("3-5")
        wait = 2
        r = self.failed(self.tool.run_while_plugging(["identify", "--timeout", str(wait)], self.host, hub))
        self.assertIn("3-5 is a hub (05e3:0608); hubs are never passed", r.stdout)
        self.assertIn("no USB device was plugged in within %d s" % wait, r.stderr)

    def test_check_warns_about_equal_claims_and_pre_start_runs_it(self):
        a = self.tool.usb_conf(100, "3-4\nid 046d:c52b\n")
        b = self.tool.usb_conf(101, "port 3-4\nserial X\n")
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("%s:1: 'port 3-4' is also in %s:1; while VM 100 and VM 101 both run, what it matches goes to neither" % (a, b), r.stderr)
        self.assertEqual(r.stderr.count("is also in"), 1)
        self.tool.usb_conf(101, "port 3-4\nserial \"X\n")
        r = self.ok(self.tool.run(["101", "pre-start"]))
        self.assertIn("%s:2: a quoted value is not closed (missing \"); line ignored" % b, r.stderr)
        self.assertIn("VM 101: USB hot-plug rules have problems (see above); the VM starts anyway", r.stderr)
        self.assertNotIn("error:", r.stderr)

    def test_usage_errors(self):
        for args in (["status", "x"], ["status", "100", "101"], ["sync", "--json"],
                     ["identify", "100"], ["identify", "--timeout", "0"], ["check", "--json"]):
            r = self.tool.run(args)
            self.assertEqual(r.returncode, 2, args)


class Placement(Case):
    """Which controller and guest port a device lands on (issue: never in Proxmox's way)."""

    def where(self, g):
        """{"BUS-PORT": (guest bus, guest port)}"""
        return {"%d-%s" % (v["hostbus"], v["hostport"]): (v["bus"], v["port"])
                for v in g.usb_hosts(with_port=True).values()}

    def hmp(self, g, line):
        return g.qmp("human-monitor-command", **{"command-line": line})

    def test_only_port_15_of_proxmox_xhci_and_qm_set_usbN_still_works(self):
        g = self.guest(100)
        self.tool.vm_conf(100, "usb0: host=abcd:0001\nusb1: spice\n")
        g.qmp("device_add", driver="usb-host", id="usb0", vendorid=0xabcd, productid=1, bus="xhci.0", port="1")
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        speeds = ["1.5", "12", "480", "5000", "10000"] + ["480"] * 15
        for i, sp in enumerate(speeds, 1):
            self.host.plug("3-4.%d" % i, 0x1000, i, speed=sp)
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        w = self.where(g)
        self.assertEqual(len(w), 20 + 1)
        on_xhci = sorted(k for k, (b, p) in w.items() if b == "xhci.0" and k.startswith("3-"))
        self.assertEqual(on_xhci, ["3-4.1"])
        self.assertEqual(w["3-4.1"], ("xhci.0", "15"))
        self.assertEqual(w["3-4.2"], ("usbhotplug-xhci0.0", "15"))
        self.assertEqual(w["3-4.20"], ("usbhotplug-xhci1.0", "12"))
        self.assertIn("VM 100: added USB controller usbhotplug-xhci0 at pci.1.0x1f for 3-4.2", r.stdout)
        ctrl = g.qmp("qom-get", path="/machine/peripheral/usbhotplug-xhci0", property="parent_bus")
        self.assertTrue(ctrl.endswith("/pci.1/pci.1"), ctrl)
        self.assertEqual(g.qmp("qom-get", path="/machine/peripheral/usbhotplug-xhci0", property="addr"), 0x1F << 3)
        # `qm set --usbN` as Proxmox does it (HMP, port N+1) works for every N
        # Proxmox may have, and Proxmox's own usb0 is untouched
        for n in range(1, 14):
            out = self.hmp(g, "device_add usb-tablet,id=usb%d,bus=xhci.0,port=%d" % (n, n + 1))
            self.assertEqual(out, "", "usb%d: %s" % (n, out))
        names = {d["name"] for d in g.qmp("qom-list", path="/machine/peripheral")}
        self.assertTrue({"usb%d" % n for n in range(14)} <= names)
        self.assertEqual(len(self.where(g)), 21)

    def test_nec_xhci_is_never_touched(self):
        g = self.guest(100, xhci=None, extra=["nec-usb-xhci,id=xhci,bus=pci.1,addr=0x1b"])
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0x1, 0x2)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(self.where(g), {"3-4": ("usbhotplug-xhci0.0", "15")})

    def test_udev_events_and_sync_keep_clear_of_usbN_ports_too(self):
        g = self.guest(100)
        self.tool.vm_conf(100, "".join("usb%d: spice\n" % n for n in range(14)))   # ports 1-14
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.ok(self.tool.run(["sync"], host=self.host))
        self.assertEqual(self.where(g), {"3-4.1": ("xhci.0", "15"), "3-4.2": ("usbhotplug-xhci0.0", "15")})

    def test_port_counts_are_read_from_qemu(self):
        # an xhci whose port 15 has no USB 3 half: a SuperSpeed device goes
        # to the tool's own controller, a USB 2 one to port 15
        g = self.guest(100, xhci="p2=15,p3=4")
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        for i, sp in enumerate(["480", "5000"], 1):
            self.host.plug("3-4.%d" % i, 0x1000, i, speed=sp)
            self.ok(self.tool.event(self.host, "add", "3-4.%d" % i))
        self.assertEqual(self.where(g), {"3-4.1": ("xhci.0", "15"), "3-4.2": ("usbhotplug-xhci0.0", "15")})

    def test_vm_without_xhci_gets_the_tools_own_controller(self):
        g = self.guest(100, xhci=None)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0xABCD, 0x0001, speed="12")
        self.host.plug("3-4.2", 0xABCD, 0x0002, speed="5000")
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(r.stdout.count("added USB controller"), 1, r.stdout)
        self.assertEqual(self.where(g), {"3-4.1": ("usbhotplug-xhci0.0", "15"),
                                         "3-4.2": ("usbhotplug-xhci0.0", "14")})
        # never on the slow UHCI bus
        self.assertNotIn("uhci", str(g.usb_hosts()))

    def test_no_room_says_so_in_one_line(self):
        self.guest(100, xhci=None, bridge=False)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0xABCD, 0x0001)
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(r.stderr, "pve-usb-hotplug: error: VM 100: no free USB 2 port for 3-4 (abcd:0001), and no room "
                         "for another USB controller (no free slot on its PCI bridges pci.1 (slot 31), pci.2 (25-31) or "
                         "pci.4 (4-31)); detach something, or give the VM a PCI bridge\n")

    def test_a_device_added_without_a_port_is_stepped_over(self):
        g = self.guest(100)
        g.qmp("device_add", driver="usb-tablet", id="someone", bus="xhci.0")   # takes port 1
        for p in range(2, 16):
            g.qmp("device_add", driver="usb-tablet", id="t%d" % p, bus="xhci.0")
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.where(g), {"3-4": ("usbhotplug-xhci0.0", "15")})

    def test_the_port_hint_is_only_a_guess(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        for i in range(1, 4):
            self.host.plug("3-4.%d" % i, 0x1000, i)
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        hint = os.path.join(self.tool.state_dir, "100.ports")
        self.assertTrue(os.path.exists(hint))
        # behind the tool's back: its device goes, and another takes port 15
        g.qmp("device_del", id="usbhost3-4.1")
        g.qmp("device_add", driver="usb-tablet", id="intruder", bus="xhci.0", port="15")
        self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertEqual(self.where(g)["3-4.2"], ("usbhotplug-xhci0.0", "15"))
        # a hint left by another QEMU process is not used
        g.stop()
        g = self.guest(100)
        self.ok(self.tool.event(self.host, "add", "3-4.3"))
        self.assertEqual(self.where(g), {"3-4.3": ("xhci.0", "15")})
        # nor one that is not what the tool writes, nor one naming another bus
        for junk in ("garbage\n", "stamp x\nctrl xhci 99 15 0\n", "\0" * 10,
                     "stamp %s\nctrl uhci 15 15 0\n" % self.stamp(g)):
            with open(hint, "w") as f:
                f.write(junk)
            self.ok(self.tool.event(self.host, "add", "3-4.1"))
            self.assertEqual(self.where(g)["3-4.1"], ("usbhotplug-xhci0.0", "15"))
            g.qmp("device_del", id="usbhost3-4.1")

    @staticmethod
    def stamp(g):
        with open("/proc/%d/stat" % g.proc.pid) as f:
            return "%d:%s" % (g.proc.pid, f.read().rsplit(")", 1)[1].split()[19])

    def test_reset_keeps_devices_and_a_restart_gets_them_back(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        for i in range(1, 4):
            self.host.plug("3-4.%d" % i, 0x1000, i)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        before = self.where(g)
        self.assertEqual(len(before), 3)
        g.qmp("system_reset")                          # a reboot inside the guest
        self.assertEqual(self.where(g), before)
        g.stop()                                       # stop/start: a new QEMU
        g = self.guest(100)
        self.assertEqual(self.where(g), {})
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.where(g), before)

    def test_after_proxmox_drops_xhci_sync_brings_everything_back(self):
        # Proxmox unplugs "xhci" with every device on it when the last usbN
        # goes; a bootless test guest cannot complete a PCI unplug, so the
        # state after it is built directly: the VM has no xhci and holds nothing.
        g = self.guest(100, xhci=None)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertEqual(r.stdout.count(" as usbhost"), 2, r.stdout)
        self.assertEqual({b for b, p in self.where(g).values()}, {"usbhotplug-xhci0.0"})


class Faults(Case):
    """A QMP peer that misbehaves, locks, and files and directories that are not what they should be."""

    def fake(self, script, vmid=100):
        f = FakeQmp(self.tool.qmp_dir, vmid, script)
        self.addCleanup(f.close)
        return f

    def attach_with(self, script, timeout_ms=1000):
        self.tool.write_settings(timeout_ms=timeout_ms)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0x1, 0x2)
        f = self.fake(script)
        t = time.monotonic()
        r = self.tool.event(self.host, "add", "3-4")
        return r, time.monotonic() - t, f

    def assert_lock_free(self):
        """The next run is not held up by a lock left behind."""
        f = self.fake(lambda c, phase, req: FakeQmp.normal(phase, req), vmid=101)
        self.tool.usb_conf(101, "3-9\n")
        self.host.plug("3-9", 0x1, 0x3)
        t = time.monotonic()
        self.ok(self.tool.event(self.host, "add", "3-9"))
        self.assertLess(time.monotonic() - t, 5)
        self.assertIn("device_add", f.commands)

    def test_qemu_dies_mid_conversation(self):
        def script(conn, phase, req):
            return None if phase == "qom-list" else FakeQmp.normal(phase, req)
        r, took, _ = self.attach_with(script)
        self.failed(r)
        self.assertIn("VM 100: listing USB controllers to attach 3-4 (0001:0002): QEMU closed the QMP connection (is the VM stopping?)", r.stderr)
        self.assertLess(took, 5)
        self.assert_lock_free()

    def test_garbage_instead_of_a_greeting(self):
        r, took, _ = self.attach_with(lambda c, phase, req: b"this is not QMP\n")
        self.failed(r)
        self.assertIn("does not speak QMP as expected (Protocol error)", r.stderr)
        self.assertLess(took, 5)

    def test_half_a_line_and_a_stall_ends_at_the_deadline(self):
        r, took, _ = self.attach_with(lambda c, phase, req: b'{"QMP": {' if phase == "greeting" else None,
                                      timeout_ms=800)
        self.failed(r)
        self.assertIn("VM 100: no answer on %s/100.qmp within 800 ms" % self.tool.qmp_dir, r.stderr)
        self.assertGreater(took, 0.7)
        self.assertLess(took, 5)
        self.assert_lock_free()

    def test_closes_right_after_the_greeting(self):
        def script(conn, phase, req):
            return FakeQmp.normal(phase, req) if phase == "greeting" else None
        r, took, _ = self.attach_with(script)
        self.failed(r)
        self.assertIn("VM 100: listing USB controllers to attach 3-4 (0001:0002): QEMU closed the QMP connection (is the VM stopping?)", r.stderr)

    def test_events_between_command_and_answer_and_a_1_mib_line(self):
        event = FakeQmp.line({"event": "X", "data": {"pad": "x" * (1024 * 1024)}})
        stray = FakeQmp.line({"return": {}, "id": 99999})

        def script(conn, phase, req):
            out = FakeQmp.normal(phase, req)
            return out if phase == "greeting" else event + stray + event + out
        r, took, f = self.attach_with(script)
        self.ok(r)
        self.assertIn("VM 100: added 3-4 (0001:0002) as usbhost3-4 on xhci.0 port 15", r.stdout)
        self.assertIn("device_add", f.commands)

    def test_a_line_over_the_limit_is_refused(self):
        huge = b'{"event": "X", "data": "' + b"y" * (5 * 1024 * 1024) + b'"}\r\n'
        r, took, _ = self.attach_with(lambda c, phase, req: huge if phase == "greeting" else None,
                                      timeout_ms=5000)
        self.failed(r)
        self.assertIn("does not speak QMP as expected (Message too long)", r.stderr)

    def test_a_lock_left_by_a_killed_run_never_blocks(self):
        os.makedirs(self.tool.state_dir, exist_ok=True)
        with open(os.path.join(self.tool.state_dir, "100.lock"), "w") as f:
            f.write("stale\n")
        import subprocess
        # a run killed while it held the lock (-o: only flock itself holds it)
        holder = subprocess.Popen(["flock", "-o", os.path.join(self.tool.state_dir, "101.lock"), "sleep", "60"],
                                  start_new_session=True)
        time.sleep(0.3)
        os.killpg(holder.pid, 9)
        holder.wait()
        self.assert_lock_free()
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(g.ports(), ["3-4"])

    def test_directories_missing_or_wrong(self):
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        # the lock directory cannot be made: its parent is a file
        blocker = os.path.join(self.dir, "afile")
        open(blocker, "w").close()
        self.guest(100)
        self.tool.write_settings(extra="[paths]\nstate_dir = %s/sub\n" % blocker)
        with open(self.tool.config) as f:   # the second [paths] wins for state_dir
            text = f.read().replace("state_dir = %s\n" % self.tool.state_dir, "")
        with open(self.tool.config, "w") as f:
            f.write(text)
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("VM 100: cannot use the state directory %s/sub: Not a directory (check [paths] state_dir)" % blocker, r.stderr)
        # no VM config directory at all: at boot, udev replays every device
        # before /etc/pve is mounted; that is "no rules", quietly
        self.tool.write_settings()
        shutil.rmtree(self.tool.vm_dir)
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(r.stdout + r.stderr, "")
        r = self.failed(self.tool.run(["check"]))
        self.assertIn("%s: cannot read the VM config directory: No such file or directory" % self.tool.vm_dir, r.stderr)
        os.makedirs(self.tool.vm_dir)
        # a rules file of 10 MB, and one that is a directory
        with open(os.path.join(self.tool.vm_dir, "100.usb.conf"), "w") as f:
            f.write("3-4\n" * (10 * 1024 * 1024 // 4))
        r = self.failed(self.tool.run(["check", "100"]))
        self.assertIn("larger than the 1048576 bytes a rules file may have", r.stderr)

    def test_hostile_environment_is_ignored_without_a_socket(self):
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(os.path.join(self.tool.qmp_dir, "100.qmp"))
        listener.listen(8)
        listener.setblocking(False)
        self.addCleanup(listener.close)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        base = self.host.event_env("add", "3-4")
        bad = [dict(base, DEVPATH=""), dict(base, DEVPATH="/devices/../../etc/3-4"),
               dict(base, DEVPATH="/devices/x/./3-4"), dict(base, DEVPATH="/devices/" + "a/" * 60000 + "3-4"),
               dict(base, DEVPATH="/devices/pci0000:00/usb3/3-4\x01"), dict(base, ACTION="add" * 10000),
               dict(base, ACTION=""), dict(base, BUSNUM="004"), dict(base, BUSNUM="3x"),
               dict(base, BUSNUM="9" * 5000), dict(base, TYPE="9/0/0"), dict(base, TYPE="x"),
               dict(base, SUBSYSTEM="usb\x7f"), dict(base, DEVTYPE="usb_interface")]
        for env in bad:
            r = self.ok(self.tool.run(host=self.host, env=env))
            self.assertEqual(r.stdout + r.stderr, "")
        with self.assertRaises(BlockingIOError):
            listener.accept()
        # a PRODUCT that makes no sense only loses the ids, not the event
        r = self.ok(self.tool.run(host=self.host, env=dict(base, PRODUCT="%n%s/\"/" + "f" * 5000)))
        self.assertIn("3-4 (1234:5678): no running VM claims it; nothing to do", r.stdout)


class Storm(Case):
    def test_200_events_for_20_devices_of_two_vms_in_parallel(self):
        import random
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-5\n")
        self.host.hub("3-4")
        self.host.hub("3-5")
        devices = ["3-4.%d" % i for i in range(1, 11)] + ["3-5.%d" % i for i in range(1, 11)]
        for i, p in enumerate(devices):
            self.host.plug(p, 0x1000, i)
        rng = random.Random(7)
        final = {}
        chains = {}
        for i, p in enumerate(devices):
            # udev runs one device's events in order, different devices at once
            actions = ["add", "remove"] * 5 if i % 2 == 0 else ["remove", "add"] * 5
            if rng.random() < 0.3:
                actions[-1] = actions[-1]          # same length either way: 10 events
            chains[p] = actions
            final[p] = actions[-1] == "add"
        self.assertEqual(sum(len(c) for c in chains.values()), 200)
        self.assertEqual(self.storm(chains), [])
        want_a = sorted(p for p in devices if final[p] and p.startswith("3-4"))
        want_b = sorted(p for p in devices if final[p] and p.startswith("3-5"))
        self.assertEqual((sorted(a.ports()), sorted(b.ports())), (want_a, want_b))
        # none twice: one usb-host per host port, each on its own guest port
        for g in (a, b):
            where = [(v["bus"], v["port"]) for v in g.usb_hosts(with_port=True).values()]
            self.assertEqual(len(where), len(set(where)))

    def unplug_while_it_waits(self, args, env, port, key="100"):
        """Runs the program while the test holds the guest's lock; once the
        program waits for it (it has planned), port is unplugged from its
        testbed's sysfs and the lock let go. Its (returncode, stdout, stderr)."""
        import fcntl
        os.makedirs(self.tool.state_dir, mode=0o700, exist_ok=True)
        lock = os.open(os.path.join(self.tool.state_dir, key + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        ino = ":%d " % os.fstat(lock).st_ino
        argv, e = self.tool.cmd(args, self.host, env)
        p = subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            waiter = None
            for _ in range(500):   # until it waits for the lock (blocked in flock())
                with open("/proc/locks") as f:
                    waiter = next((line.split()[5] for line in f if "-> FLOCK" in line and ino in line), None)
                if waiter or p.poll() is not None:
                    break
                time.sleep(0.005)
            self.assertIsNotNone(waiter, "it never waited for the lock")
            with open("/proc/%s/environ" % waiter, "rb") as f:
                tb = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)[b"UMOCKDEV_DIR"]
            sysfs = os.path.join(tb.decode(), "sys")
            shutil.rmtree(sysfs + self.host.devpath(port))
            os.unlink(os.path.join(sysfs, "bus/usb/devices", port))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)
            out, err = p.communicate(timeout=60)
        return p.returncode, out, err

    def test_a_device_removed_between_the_plan_and_the_attach_is_not_attached(self):
        # an add plans without the VM's lock, and a remove may run before it
        # gets it: under the lock it looks again, and attaches nothing
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        rc, out, err = self.unplug_while_it_waits([], self.host.event_env("add", "3-4"), "3-4")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("3-4 (1234:5678) is gone again before it could be attached; nothing to do", out)
        self.assertNotIn("added", out)
        self.assertEqual(g.ports(), [])

    def test_post_start_attaches_only_what_is_still_there_once_it_has_the_lock(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n3-5\n")
        self.host.plug("3-4")
        self.host.plug("3-5", 0x046D, 0xC52B)
        rc, out, err = self.unplug_while_it_waits(["100", "post-start"], None, "3-4")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("3-4 (1234:5678) is gone again before it could be attached; nothing to do", out)
        self.assertIn("VM 100: added 3-5 (046d:c52b) as usbhost3-5", out)
        self.assertEqual(g.ports(), ["3-5"])


class Hardening(Case):
    """A hostile local user and a careless admin (issue 10)."""

    def fake(self, script, vmid=100):
        f = FakeQmp(self.tool.qmp_dir, vmid, script)
        self.addCleanup(f.close)
        return f

    def pin(self, g, dev_id):
        p = "/machine/peripheral/" + dev_id
        return (g.qmp("qom-get", path=p, property="vendorid"), g.qmp("qom-get", path=p, property="productid"))

    # 1. the state directory

    def test_state_directory_is_made_root_only(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        self.ok(self.tool.event(self.host, "add", "3-4"))
        st = os.stat(self.tool.state_dir)
        self.assertEqual((st.st_uid, st.st_mode & 0o7777), (0, 0o700))
        for name in os.listdir(self.tool.state_dir):
            self.assertEqual(os.stat(os.path.join(self.tool.state_dir, name)).st_mode & 0o077, 0, name)
        self.assertEqual(g.ports(), ["3-4"])

    def test_a_state_directory_others_could_write_is_refused(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        d = self.tool.state_dir
        # made first by a local user (uid 65534), or left writable for all, or a link
        os.mkdir(d)
        os.chown(d, 65534, 65534)
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("VM 100: %s is refused as the state directory: it is owned by uid 65534, not by uid 0 (root); remove it (it is made again, mode 0700) or set [paths] state_dir" % d, r.stderr)
        os.chown(d, 0, 0)
        os.chmod(d, 0o1777)
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("%s is refused as the state directory: its mode is 1777: others may write there" % d, r.stderr)
        os.rmdir(d)
        os.mkdir(d + ".real", 0o700)
        os.symlink(d + ".real", d)
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("%s is a symbolic link and is refused as the state directory" % d, r.stderr)
        self.assertEqual(g.ports(), [])
        os.unlink(d)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(g.ports(), ["3-4"])

    def test_what_lies_in_the_state_directory_never_blocks_or_steers(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        os.mkdir(self.tool.state_dir, 0o700)
        # a FIFO where the new hint goes, and one as the lock file
        os.mkfifo(os.path.join(self.tool.state_dir, "100.ports.new"))
        t = time.monotonic()
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertLess(time.monotonic() - t, 10)
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2"])
        self.assertTrue(os.path.isfile(os.path.join(self.tool.state_dir, "100.ports")))
        os.mkfifo(os.path.join(self.tool.state_dir, "101.lock"))
        self.guest(101)
        self.tool.usb_conf(101, "3-9\n")
        self.host.plug("3-9")
        t = time.monotonic()
        r = self.failed(self.tool.event(self.host, "add", "3-9"))
        self.assertLess(time.monotonic() - t, 10)
        self.assertIn("VM 101: %s/101.lock is not a regular file; remove it" % self.tool.state_dir, r.stderr)
        # a hint that names the UHCI bus is not believed
        hint = os.path.join(self.tool.state_dir, "100.ports")
        with open(hint, "w") as f:
            f.write("stamp %s\nctrl uhci 15 15 0\n" % Placement.stamp(g))
        self.host.plug("3-4.3")
        self.ok(self.tool.event(self.host, "add", "3-4.3"))
        self.assertNotIn("uhci", str(g.usb_hosts()))

    # 2. escaping

    def test_qemu_text_is_escaped_one_line_a_message(self):
        def script(conn, phase, req):
            if phase == "device_add":
                return FakeQmp.line({"error": {"class": "GenericError", "desc": "bad\nthing \x1b[31mred\x1b[0m"},
                                     "id": req["id"]})
            return FakeQmp.normal(phase, req)
        self.fake(script)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0x1, 0x2)
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(r.stderr, "pve-usb-hotplug: error: VM 100: attaching 3-4 (0001:0002): QEMU says: "
                         "bad\\x0athing \\x1b[31mred\\x1b[0m\n")

    # 3. nothing left behind

    def test_attach_is_pinned_to_vendor_and_product(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0x046D, 0xC52B)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(self.pin(g, "usbhost3-4"), (0x046D, 0xC52B))

    def test_unplug_after_a_deny_was_added_still_detaches(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        d = self.host.plug("3-4.4", 0x1, 0x2)
        self.ok(self.tool.event(self.host, "add", "3-4.4"))
        self.assertEqual(g.ports(), ["3-4.4"])
        self.tool.usb_conf(100, "3-4\ndeny 3-4.4\n")
        self.host.unplug("3-4.4")
        r = self.ok(self.tool.event(self.host, "remove", "3-4.4", dev=d))
        self.assertIn("VM 100: detached 3-4.4 (0001:0002) (usbhost3-4.4)", r.stdout)
        self.assertEqual(g.ports(), [])

    def test_a_left_entry_loses_the_port_to_a_denied_device(self):
        g = self.guest(100)
        conf = self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.4", 0x1, 0x2)
        self.ok(self.tool.event(self.host, "add", "3-4.4"))
        # its remove was missed; then the port is denied and a serial adapter plugged in
        self.tool.usb_conf(100, "3-4\ndeny 3-4.4\n")
        self.host.plug("3-4.4", 0x1A86, 0x7523, product="Serial")
        r = self.ok(self.tool.event(self.host, "add", "3-4.4"))
        self.assertIn('3-4.4 (1a86:7523 "Serial") is kept out of VM 100 by \'deny port 3-4.4\' (%s:2)' % conf, r.stdout)
        self.assertIn('VM 100: detached 3-4.4 (1a86:7523 "Serial") (usbhost3-4.4): no running VM\'s rules give it to this VM now', r.stdout)
        self.assertEqual(g.ports(), [])

    def test_a_left_entry_for_another_model_is_replaced(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0x1, 0x2)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.host.plug("3-4", 0x3, 0x4)      # another device; the remove was missed
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("VM 100: usbhost3-4 was left for 0001:0002, and 3-4 (0003:0004) is plugged in there now: detached it first", r.stdout)
        self.assertEqual(self.pin(g, "usbhost3-4"), (3, 4))

    def test_a_left_entry_in_a_vm_that_no_longer_gets_it_moves(self):
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0x1, 0x2)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.tool.usb_conf(100, "3-5\n")
        self.tool.usb_conf(101, "3-4\n")
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("VM 100: detached 3-4 (0001:0002) (usbhost3-4): it goes to VM 101 now", r.stdout)
        self.assertEqual((a.ports(), b.ports()), ([], ["3-4"]))

    def test_a_remove_that_cannot_reach_qemu_is_retried(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        d = self.host.plug("3-4", 0x1, 0x2)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.tool.write_settings(extra="[lock]\ntimeout_ms = 300\n")
        import fcntl
        lock = open(os.path.join(self.tool.state_dir, "100.lock"))
        fcntl.flock(lock, fcntl.LOCK_EX)        # another run works on VM 100
        self.host.unplug("3-4")
        r = self.failed(self.tool.event(self.host, "remove", "3-4", dev=d))
        self.assertIn("VM 100: another pve-usb-hotplug still works on this VM after 300 ms", r.stderr)
        self.assertIn("VM 100: will try again in 10000 ms ('pve-usb-hotplug sync 100', unit pve-usb-hotplug-retry-100-1)", r.stdout)
        self.assertEqual(g.ports(), ["3-4"])
        calls = self.tool.retry_calls()
        self.assertEqual(len(calls), 1)
        self.assertIn("--unit pve-usb-hotplug-retry-100-1 --on-active 10000ms", calls[0])
        self.assertIn("--setenv PVE_USB_HOTPLUG_RETRY=1 --setenv PVE_USB_HOTPLUG_CONFIG=%s" % self.tool.config, calls[0])
        self.assertTrue(calls[0].endswith(" sync 100"), calls[0])
        lock.close()
        # what systemd would run then
        self.ok(self.tool.run(["sync", "100"], host=self.host, env={"PVE_USB_HOTPLUG_RETRY": "1"}))
        self.assertEqual(g.ports(), [])

    def test_a_scheduled_retry_leaves_a_released_vm_alone(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0x1, 0x2)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.ok(self.tool.run(["release", "100"], host=self.host))
        self.assertEqual(g.ports(), [])
        # the retry of a detach that failed before the release, 10 s later
        r = self.ok(self.tool.run(["sync", "100"], host=self.host, env={"PVE_USB_HOTPLUG_RETRY": "1"}))
        self.assertIn("VM 100 is released (for a migration, a snapshot or hibernation): the scheduled retry leaves it alone; 'pve-usb-hotplug sync 100' ends the release", r.stdout)
        self.assertEqual(g.ports(), [])
        # the operator's sync ends it
        self.ok(self.tool.run(["sync", "100"], host=self.host))
        self.assertEqual(g.ports(), ["3-4"])

    def test_a_retry_that_fails_again_schedules_the_next_until_five(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0x1, 0x2)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.tool.write_settings(extra="[lock]\ntimeout_ms = 200\n")
        import fcntl
        lock = open(os.path.join(self.tool.state_dir, "100.lock"))
        fcntl.flock(lock, fcntl.LOCK_EX)
        self.addCleanup(lock.close)
        r = self.failed(self.tool.run(["sync", "100"], host=self.host, env={"PVE_USB_HOTPLUG_RETRY": "1"}))
        self.assertIn("VM 100: will try again in 10000 ms", r.stdout)
        self.assertIn("--setenv PVE_USB_HOTPLUG_RETRY=2 ", self.tool.retry_calls()[-1])
        # scheduled from inside the running unit: another unit name
        self.assertIn("--unit pve-usb-hotplug-retry-100-2 ", self.tool.retry_calls()[-1])
        # a sync run by hand that fails schedules nothing; the fifth try is the last
        self.failed(self.tool.run(["sync", "100"], host=self.host))
        r = self.failed(self.tool.run(["sync", "100"], host=self.host, env={"PVE_USB_HOTPLUG_RETRY": "5"}))
        self.assertIn("VM 100: still failing after 5 tries; run 'pve-usb-hotplug sync 100' once it answers", r.stderr)
        self.assertEqual(len(self.tool.retry_calls()), 1)
        self.assertEqual(g.ports(), ["3-4"])

    # 4. running means running

    def test_a_pid_file_named_by_another_path_is_the_same_vm(self):
        # QEMU started with -pidfile through a link to the directory (as
        # /var/run is /run): the same file, so the VM runs
        link = os.path.join(self.dir, "run-link")
        os.symlink(self.tool.qmp_dir, link)
        g = self.guest(100, qmp_dir=link)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertIn("VM 100: added 3-4.1", r.stdout)
        self.assertEqual(g.ports(), ["3-4.1"])

    def test_a_pid_file_of_another_process_is_not_a_running_vm(self):
        a = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-4.1\n")         # more specific, but VM 101 is stopped
        with open(os.path.join(self.tool.qmp_dir, "101.pid"), "w") as f:
            f.write("%d\n" % os.getpid())          # its pid now belongs to this test
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertEqual(a.ports(), ["3-4.1"])

    def test_a_chosen_vm_that_does_not_answer_is_passed_over(self):
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-4.1\n")
        os.unlink(b.qmp_path)                      # QEMU 101 runs, but has no socket
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertIn("3-4.1 (1234:5678): placing it again without VM 101", r.stdout)
        self.assertEqual(a.ports(), ["3-4.1"])

    # 5. one deadline per run

    def test_a_stalled_qemu_costs_one_timeout_not_one_per_device(self):
        def script(conn, phase, req):
            return FakeQmp.normal(phase, req) if phase in ("greeting", "qmp_capabilities") else b""
        self.fake(script)
        self.tool.write_settings(timeout_ms=1000)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        for i in range(1, 31):
            self.host.plug("3-4.%d" % i)
        t = time.monotonic()
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        self.assertLess(time.monotonic() - t, 8)
        self.assertIn("QEMU did not answer within 1000 ms", r.stderr)
        self.assertIn("VM 100: 29 more device(s) not attached: the QMP connection failed (see above)", r.stderr)

    def test_a_whole_run_ends_by_its_time_limit(self):
        self.fake(lambda c, phase, req: FakeQmp.normal(phase, req) if phase == "greeting" else b"")
        self.tool.write_settings(timeout_ms=20000, extra="[run]\ntimeout_ms = 1000\n")
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        t = time.monotonic()
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertLess(time.monotonic() - t, 8)
        self.assertIn("this run's time limit of 1000 ms ([run] timeout_ms) is up", r.stderr)

    # 6. the lock's deadline

    def test_the_lock_wait_gives_up_at_its_deadline(self):
        self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        self.tool.write_settings(extra="[lock]\ntimeout_ms = 400\n")
        os.mkdir(self.tool.state_dir, 0o700)
        import fcntl
        lock = open(os.path.join(self.tool.state_dir, "100.lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        self.addCleanup(lock.close)
        for _ in range(3):
            t = time.monotonic()
            r = self.failed(self.tool.event(self.host, "add", "3-4"))
            took = time.monotonic() - t
            self.assertGreater(took, 0.35)
            self.assertLess(took, 8)
            self.assertIn("VM 100: another pve-usb-hotplug still works on this VM after 400 ms ([lock] timeout_ms); giving up", r.stderr)
        # and the run's limit cuts a longer lock wait short
        self.tool.write_settings(extra="[lock]\ntimeout_ms = 60000\n[run]\ntimeout_ms = 500\n")
        t = time.monotonic()
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertLess(time.monotonic() - t, 8)
        self.assertIn("VM 100: another pve-usb-hotplug still works on this VM, and this run's time limit of 500 ms", r.stderr)

    # 9. status of a VM without rules

    def test_status_of_a_vm_without_rules_asks_qemu(self):
        g = self.guest(100)
        g.qmp("device_add", driver="usb-host", id="usbhost3-4", hostbus=3, hostport="4", bus="xhci.0")
        r = self.ok(self.tool.run(["status", "100", "--json"], host=self.host))
        vm = json.loads(r.stdout)["vms"][0]
        self.assertEqual((vm["vmid"], vm["holds"], vm["stale"]), (100, ["3-4"], ["3-4"]))


class Proxmox(Case):
    """A good Proxmox citizen (issue 11)."""

    node = socket.gethostname().split(".")[0]

    def mapping(self, text):
        path = os.path.join(self.dir, "mapping-usb.cfg")
        with open(path, "w") as f:
            f.write(text)
        self.tool.write_settings(extra="[paths]\nmapping_file = %s\n" % path)
        return path

    def test_a_mapped_device_is_left_to_proxmox(self):
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.vm_conf(101, "usb0: mapping=desk\nusb1: mapping=board\n")
        self.mapping("desk\n\tmap node=othernode,id=1111:1111\n\tmap node=%s,id=046d:c52b\n"
                     "\tdescription keyboard\n\nboard\n\tmap node=%s,id=0483:5740,path=3-4.3\n"
                     % (self.node, self.node))
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B)     # mapping desk, by id
        self.host.plug("3-4.2", 0x0483, 0x5740)     # board's id, but not its path
        self.host.plug("3-4.3", 0x0483, 0x5740)     # mapping board, by path
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("3-4.1 (046d:c52b) is passed by Proxmox itself (usb0 in VM 101's config, mapping 'desk'); left to Proxmox", r.stdout)
        self.assertIn("3-4.3 (0483:5740) is passed by Proxmox itself (usb1 in VM 101's config, mapping 'board')", r.stdout)
        self.assertEqual(a.ports(), ["3-4.2"])
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertRegex(r.stdout, r"3-4\.1 +046d:c52b .*VM 101: passed by Proxmox itself \(usb0, mapping 'desk'\)")
        j = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        d = [x for x in j["devices"] if x["port"] == "3-4.3"][0]
        self.assertEqual((d["state"], d["claim"]["proxmox_mapping"]), ("proxmox", "board"))

    def test_a_missing_or_malformed_mapping_file_is_a_warning(self):
        self.tool.usb_conf(100, "3-4\n")
        self.tool.vm_conf(100, "usb0: mapping=desk\n")
        path = self.mapping("desk\n\tmap node=%s,id=xyz\n9bad\n" % self.node)
        r = self.ok(self.tool.run(["check", "100"]))
        self.assertIn("%s:2: mapping 'desk': id must be VENDOR:PRODUCT, four hex digits each" % path, r.stderr)
        self.assertIn("%s:3: '9bad' is not a mapping name" % path, r.stderr)
        self.assertIn("VM 100: usb0 uses mapping 'desk', which has no map line for node '%s' in %s" % (self.node, path), r.stderr)
        os.unlink(path)
        r = self.ok(self.tool.run(["check", "100"]))
        self.assertIn("VM 100: usb0 uses mapping 'desk', but %s cannot be read (No such file or directory)" % path, r.stderr)
        # and events still work
        g = self.guest(100)
        self.host.plug("3-4")
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(g.ports(), ["3-4"])

    def test_rules_left_by_a_destroyed_or_migrated_vm_are_named(self):
        conf = self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-5\n")
        self.tool.vm_conf(101, "memory: 512\n")
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("%s: there is no 100.conf on this node (the VM was destroyed or migrated away?): a new VM 100 would inherit these rules" % conf, r.stderr)
        self.assertNotIn("101.conf", r.stderr)
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertIn("VM 100: not running, 1 rule(s) in %s, holds 0 device(s)\n  no 100.conf on this node (destroyed or migrated away?)" % conf, r.stdout)
        j = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        self.assertEqual([(v["vmid"], v["vm_config"]) for v in j["vms"]], [(100, False), (101, True)])
        # a starting VM has its conf: pre-start says nothing of it
        r = self.ok(self.tool.run(["101", "pre-start"]))
        self.assertEqual(r.stderr, "")

    def test_a_port_path_qemu_cannot_compare_is_refused(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-14\n")
        port = "3-14"
        for n in (10, 11, 12, 13):
            port += ".%d" % n
            self.host.hub(port)
        self.host.plug(port + ".1", 0x1, 0x2)        # hostport 14.10.11.12.13.1: 16 characters
        self.host.plug("3-14.10.2", 0x1, 0x3)
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("VM 100: cannot pass 3-14.10.11.12.13.1 (0001:0002): its port path '14.10.11.12.13.1' is longer than the 15 characters QEMU compares", r.stderr)
        self.assertEqual(g.ports(), ["3-14.10.2"])

    def migrate(self, src, vmid):
        """Migrates src to a new QEMU started from the Proxmox layout only;
        returns (the source's final migration status, the target)."""
        tdir = os.path.join(self.dir, "target-%d" % vmid)
        os.makedirs(tdir, exist_ok=True)
        sock = os.path.join(tdir, "migrate.sock")
        tgt = self.guest(vmid, qmp_dir=tdir, incoming="unix:" + sock)
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.01)
        src.qmp("migrate", uri="unix:" + sock)
        deadline = time.monotonic() + 60
        while True:
            status = src.qmp("query-migrate").get("status")
            if status in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return status, tgt

    def release(self, g, vmid):
        """pve-usb-hotplug release, with the guest's part played: a bootless
        test guest never acknowledges a PCI unplug, and a system_reset
        completes it as a guest OS would (the tool keeps no QMP connection
        open while it waits)."""
        argv, env = self.tool.cmd(["release", str(vmid)], host=self.host)
        p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # reset until it is done: the unplug may be asked for late on a
        # busy machine, and a reset before it completes nothing
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                p.wait(timeout=0.3)
                break
            except subprocess.TimeoutExpired:
                try:
                    g.qmp("system_reset")
                except OSError:      # the tool holds the socket: next round
                    pass
        out, err = p.communicate(timeout=60)
        r = subprocess.CompletedProcess(argv, p.returncode, out, err)
        return self.ok(r)

    def test_release_lets_a_migration_complete(self):
        kept, rel = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-5\n")
        for p in ("3-4", "3-5"):
            self.host.hub(p)
            for i in (1, 2):
                self.host.plug("%s.%d" % (p, i), 0x1000, i)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.ok(self.tool.run(["101", "post-start"], host=self.host))
        self.assertEqual(len(rel.usb_hosts()), 2)
        # without release, the target cannot take the state
        status, tgt = self.migrate(kept, 100)
        self.assertNotEqual(tgt.proc.wait(timeout=60), 0)
        # QEMU 7.2 and 10: "Unknown savevm section or instance ..."; 11: "Unknown section or instance ..."
        self.assertRegex(tgt.proc.stderr.read().decode(), r"Unknown (savevm )?section or instance '[^']*usb-host'")
        # with it, the migration completes and the target runs on
        r = self.release(rel, 101)
        self.assertIn("VM 101: detached 3-5.1 (usbhost3-5.1): released", r.stdout)
        self.assertIn("VM 101: released: it has only what its 101.conf describes", r.stdout)
        names = {d["name"] for d in rel.qmp("qom-list", path="/machine/peripheral")}
        self.assertFalse({n for n in names if n.startswith("usbhost") or n.startswith("usbhotplug")}, names)
        self.assertIn("xhci", names)
        status, tgt = self.migrate(rel, 101)
        self.assertEqual(status, "completed")
        self.assertIsNone(tgt.proc.poll())
        self.assertIn(tgt.qmp("query-status")["status"], ("paused", "running", "postmigrate", "prelaunch"))

    def test_a_released_vm_is_left_alone_until_sync(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.ok(self.tool.run(["release", "100"], host=self.host))
        self.assertEqual(g.ports(), [])
        self.host.plug("3-4.2")
        self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertEqual(g.ports(), [])
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertIn("VM 100: running, released, 1 rule(s)", r.stdout)
        self.assertIn("  released: USB events leave it alone until 'pve-usb-hotplug sync 100' or its next start", r.stdout)
        self.assertTrue(json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)["vms"][0]["released"])
        r = self.ok(self.tool.run(["sync", "100"], host=self.host))
        self.assertIn("VM 100: no longer released; its devices come back", r.stdout)
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2"])
        # a release lasts only as long as its QEMU: a restart is not held back
        self.release(g, 100)
        g.stop()
        g = self.guest(100)
        self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertEqual(g.ports(), ["3-4.2"])
        self.assertEqual(self.tool.run(["release"]).returncode, 2)

    def test_post_start_on_a_migration_target_attaches_nothing(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host, env={"PVE_MIGRATED_FROM": "pve1"}))
        self.assertEqual(r.stdout, "pve-usb-hotplug: VM 100: started as the target of a migration from node pve1: nothing is attached now; run 'pve-usb-hotplug sync 100' when the migration has finished\n")
        self.assertEqual(g.ports(), [])


class OtherGuests(Case):
    """QEMU guests that Proxmox did not start, declared in the settings."""

    def plain(self, name, args=(), machine="pc", qemu_name=None, sock=None, pidfile=None):
        g = PlainGuest(sock or os.path.join(self.dir, "%s.qmp" % name), args, machine, qemu_name, pidfile)
        self.guests.append(g)
        return g

    def test_udev_add_and_remove_on_the_guests_own_controller(self):
        g = self.plain("desk", ["-device", "qemu-xhci,id=myxhci,p2=4,p3=4"])
        self.tool.declare("# a desktop started by hand\n[qemu desk]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("desk", "3-4\n")
        self.host.hub("3-4")
        d = self.host.plug("3-4.1", 0x046D, 0xC52B)
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertIn("QEMU guest desk: added 3-4.1 (046d:c52b) as usbhost3-4.1 on myxhci.0 port 4", r.stdout)
        self.assertEqual(g.usb_hosts(), {"usbhost3-4.1": {"hostbus": 3, "hostport": "4.1", "bus": "myxhci.0"}})
        self.host.unplug("3-4.1")
        r = self.ok(self.tool.event(self.host, "remove", "3-4.1", dev=d))
        self.assertIn("QEMU guest desk: detached 3-4.1 (046d:c52b) (usbhost3-4.1)", r.stdout)
        self.assertEqual(g.ports(), [])

    def test_a_guest_without_usb_controller_gets_one_on_the_root_bus(self):
        g = self.plain("bare")
        self.tool.declare("[qemu bare]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("bare", "3-4\n")
        self.host.plug("3-4", 0x0483, 0x5740)
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("QEMU guest bare: added USB controller usbhotplug-xhci0 at pci.0.0x1f for 3-4", r.stdout)
        self.assertEqual(g.usb_hosts(), {"usbhost3-4": {"hostbus": 3, "hostport": "4", "bus": "usbhotplug-xhci0.0"}})
        self.assertEqual(g.parent_bus("usbhotplug-xhci0"), "/machine/i440fx/pci.0")

    def test_q35_takes_an_empty_root_port_and_says_so_when_there_is_none(self):
        g = self.plain("q", ["-device", "pcie-root-port,id=rp1,chassis=1,bus=pcie.0,addr=0x5"], machine="q35")
        self.tool.declare("[qemu q]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("q", "3-4\n3-5\n")
        self.host.plug("3-4", 0x0483, 0x5740)
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("QEMU guest q: added USB controller usbhotplug-xhci0 at rp1.0x0 for 3-4", r.stdout)
        self.assertEqual(g.ports(), ["3-4"])
        # no room left: q35's root bus takes no hot-plug
        h = self.plain("q2", machine="q35")
        self.tool.declare("[qemu q2]\nqmp = %s\n" % h.qmp_path)
        self.tool.guest_rules("q2", "3-4\n")
        r = self.failed(self.tool.run(["sync", "q2"], host=self.host))
        self.assertIn("QEMU guest q2: no free USB 2 port for 3-4 (0483:5740), and no room for another USB controller "
                      "(no free slot on a PCI bridge, an i440fx root bus or an empty pcie-root-port)", r.stderr)

    def test_xen_guest_is_found_by_name_among_the_domids(self):
        xen = os.path.join(self.dir, "xen")
        os.makedirs(xen)
        other = self.plain("o", ["-device", "qemu-xhci,id=xhci0"], qemu_name="other",
                           sock=os.path.join(xen, "qmp-libxl-3"))
        # libxl's usbctrl of version 3 is an nec-usb-xhci
        win = self.plain("w", ["-device", "nec-usb-xhci,id=xenusb-0,p2=15,p3=15"], qemu_name="win10",
                         sock=os.path.join(xen, "qmp-libxl-7"))
        self.tool.declare("[xen win10]\nqmp = %s/qmp-libxl-*\n" % xen)
        self.tool.guest_rules("win10", "3-4\n")
        self.host.plug("3-4", 0x0483, 0x5740)
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("Xen guest win10: added 3-4 (0483:5740) as usbhost3-4 on xenusb-0.0 port 15", r.stdout)
        self.assertEqual((win.ports(), other.ports()), (["3-4"], []))
        # the domain restarts with a new domid: the same rules follow it
        win.stop()
        win = self.plain("w2", ["-device", "qemu-xhci,id=xhci0"], qemu_name="win10",
                         sock=os.path.join(xen, "qmp-libxl-8"))
        self.ok(self.tool.run(["sync", "win10"], host=self.host))
        self.assertEqual((win.ports(), other.ports()), (["3-4"], []))
        # two QEMUs with that name: neither is guessed
        dup = self.plain("w3", ["-device", "qemu-xhci,id=xhci0"], qemu_name="win10",
                         sock=os.path.join(xen, "qmp-libxl-9"))
        r = self.failed(self.tool.run(["sync", "win10"], host=self.host))
        self.assertIn("Xen guest win10: %s/qmp-libxl-* finds more than one QEMU; their -name is the same: make it tell them apart" % xen,
                      r.stderr)
        self.assertEqual(dup.ports(), [])

    def test_status_check_sync_and_release_name_the_guest(self):
        g = self.plain("lab", ["-device", "qemu-xhci,id=x,p2=8,p3=8"])
        self.tool.declare("[qemu lab]\nqmp = %s\n" % g.qmp_path)
        rules = self.tool.guest_rules("lab", "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x0483, 0x5740, product="Board")
        self.host.plug("3-4.2", 0x0483, 0x5741)
        # started without a hook: sync attaches what is plugged in
        r = self.ok(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("QEMU guest lab: added 3-4.1 (0483:5740 \"Board\") as usbhost3-4.1 on x.0 port 8", r.stdout)
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2"])
        st = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        dev = {d["port"]: d for d in st["devices"]}
        self.assertEqual(dev["3-4.1"]["claim"], {"guest": "lab", "kind": "qemu", "label": "QEMU guest lab",
                                                  "rule": "port 3-4", "file": rules, "line": 1})
        self.assertEqual(dev["3-4.1"]["held_by"], ["lab"])
        self.assertEqual([(v["guest"], v["kind"], v["running"], v["holds"], v["qmp"]) for v in st["vms"]],
                         [("lab", "qemu", True, ["3-4.1", "3-4.2"], g.qmp_path)])
        r = self.ok(self.tool.run(["status", "lab"], host=self.host))
        self.assertRegex(r.stdout, r"3-4.1 +0483:5740 .* QEMU guest lab: added, not open yet \('port 3-4', lab.usb.conf:1\)")
        self.assertIn("QEMU guest lab: running, 1 rule(s) in %s, holds 2 device(s)" % rules, r.stdout)
        r = self.ok(self.tool.run(["check", "lab"]))
        self.assertIn("%s: 1 rule(s), all valid" % rules, r.stdout)
        r = self.ok(self.tool.run(["release", "lab"], host=self.host))
        self.assertIn("QEMU guest lab: released: everything pve-usb-hotplug added is gone", r.stdout)
        self.assertEqual(g.ports(), [])
        # held back: a plug leaves it alone until sync
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertEqual(g.ports(), [])
        r = self.ok(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("QEMU guest lab: no longer released; its devices come back", r.stdout)
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2"])
        # a name nobody declared
        r = self.tool.run(["status", "nosuch"], host=self.host)
        self.assertEqual(r.returncode, 2)
        self.assertIn("'nosuch' is neither a VM id (100 to 999999999) nor a guest declared in %s "
                      "([qemu NAME], [xen NAME] or [libvirt NAME])" % self.tool.config, r.stderr)

    def test_a_pid_file_says_whether_it_runs(self):
        pidfile = os.path.join(self.dir, "p.pid")
        g = self.plain("p", ["-device", "qemu-xhci,id=x"], pidfile=pidfile)
        self.tool.declare("[qemu p]\nqmp = %s\npidfile = %s\n" % (g.qmp_path, pidfile))
        self.tool.guest_rules("p", "3-4\n")
        self.host.plug("3-4", 0x0483, 0x5740)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(g.ports(), ["3-4"])
        # killed: its socket file stays, the pid file names a dead process
        g.proc.kill()
        g.proc.wait()
        self.assertTrue(os.path.exists(g.qmp_path))
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("3-4 (0483:5740): no running VM claims it; nothing to do", r.stdout)
        st = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        self.assertEqual([(v["guest"], v["running"]) for v in st["vms"]], [("p", False)])

    def test_proxmox_vms_and_other_guests_share_the_rules(self):
        vm = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        g = self.plain("desk", ["-device", "qemu-xhci,id=x"])
        self.tool.declare("[qemu desk]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("desk", "3-4.2\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x0483, 0x5740)
        self.host.plug("3-4.2", 0x046D, 0xC52B)
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        r = self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertIn("QEMU guest desk: added 3-4.2 (046d:c52b)", r.stdout)
        self.assertEqual((vm.ports(), g.ports()), (["3-4.1"], ["3-4.2"]))
        # the same claim in both: a new device goes to neither, and check
        # says so
        self.tool.guest_rules("desk", "3-4\n")
        self.host.plug("3-4.3", 0x1111, 0x2222)
        r = self.failed(self.tool.event(self.host, "add", "3-4.3"))
        self.assertIn("is claimed equally by VM 100 (%s) and QEMU guest desk (%s)"
                      % (os.path.join(self.tool.vm_dir, "100.usb.conf"), os.path.join(self.tool.config + ".d", "desk.usb.conf")),
                      r.stderr)
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("while VM 100 and QEMU guest desk both run, what it matches goes to neither", r.stderr)

    def test_a_storm_for_a_guest_without_controller_and_a_proxmox_vm(self):
        # the first plugs race to add the guest's controller: one is added
        vm, g = self.guest(100), self.plain("bare")
        self.tool.usb_conf(100, "3-4\n")
        self.tool.declare("[qemu bare]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("bare", "3-5\n")
        self.host.hub("3-4")
        self.host.hub("3-5")
        devices = ["3-4.%d" % i for i in range(1, 6)] + ["3-5.%d" % i for i in range(1, 7)]
        for i, p in enumerate(devices):
            self.host.plug(p, 0x2000, i)
        chains = {p: ["add", "remove", "add"] if i % 3 else ["add", "remove", "add", "remove"]
                  for i, p in enumerate(devices)}
        self.assertEqual(self.storm(chains), [])
        want = sorted(p for p in devices if chains[p][-1] == "add")
        self.assertEqual(sorted(vm.ports() + g.ports()), want)
        self.assertEqual(sorted(g.ports()), [p for p in want if p.startswith("3-5")])
        names = [d["name"] for d in g.qmp("qom-list", path="/machine/peripheral")]
        self.assertEqual([n for n in names if n.startswith("usbhotplug-xhci")], ["usbhotplug-xhci0"])

    def test_declarations_are_checked_line_by_line(self):
        path = self.tool.declare("[qemu 123]\nqmp = /x\n"
                                 "[qemu good]\nqmp = relative\ncolour = red\n"
                                 "[qemu noqmp]\nrules = /r\n"
                                 "[xen good]\nqmp = /y\n")
        r = self.tool.run(["check"])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.count("[qemu 123]"), 1, r.stderr)   # told once, not per key
        self.assertIn("%s:1: [qemu 123]: a guest's name is 1 to 48 letters, digits, '_', '.' or '-', starting "
                      "with a letter or a digit, and not only digits (those are Proxmox VMIDs)" % path, r.stderr)
        self.assertIn("%s:4: qmp must be an absolute path (got 'relative')" % path, r.stderr)
        self.assertIn("%s:5: unknown key 'colour' in section [qemu good]; known: qmp, qemu_name, pidfile, rules" % path,
                      r.stderr)
        self.assertIn("%s:6: [qemu noqmp] needs 'qmp = PATH', its QMP socket (QEMU's -qmp unix:PATH,server=on,wait=off)"
                      % path, r.stderr)
        self.assertIn("%s:8: 'good' is declared as [qemu good] already (%s:3); a name names one guest" % (path, path),
                      r.stderr)
        # a declared guest without its rules file is told about
        self.tool.declare("[qemu lonely]\nqmp = /nonexistent.qmp\n")
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("QEMU guest lonely (%s:1): there is no %s; it gets no devices until there is"
                      % (os.path.join(self.tool.config + ".d", "guests.conf"),
                         os.path.join(self.tool.config + ".d", "lonely.usb.conf")), r.stderr)


@unittest.skipUnless(libvirtsim.available(), "needs libvirtd, virsh and root (tests/deps.sh installs them)")
class Libvirt(Case, LoopDisks):
    """libvirt domains through a real libvirtd of the test's own. This host
    has no USB devices libvirt could pass (it reads the real /sys), so the
    passthrough itself is proven in the real-host suite; here: what libvirt
    is asked and says, and what is never asked of it."""

    def setUp(self):
        super().setUp()
        self.lv = libvirtsim.Libvirtd(self.dir)
        self.tool.declare("[libvirt lab]\nuri = %s\n" % self.lv.uri)
        self.tool.guest_rules("lab", "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B)

    def tearDown(self):
        # before the test's directory (libvirtd's socket) goes
        self.lv.stop()
        super().tearDown()

    def test_a_running_domain_is_asked_through_libvirt(self):
        self.lv.start("lab")
        r = self.failed(self.tool.event(self.host, "add", "3-4.1"))
        # libvirt itself looks for the device on this host, and says so
        self.assertIn("libvirt domain lab: libvirt did not attach 3-4.1 (046d:c52b): ", r.stderr)
        self.assertIn("/sys/bus/usb/devices", r.stderr)
        self.assertNotIn("<hostdev", self.lv.live_xml("lab"))
        st = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        self.assertEqual([(v["guest"], v["kind"], v["label"], v["running"], v["holds"]) for v in st["vms"]],
                         [("lab", "libvirt", "libvirt domain lab", True, [])])
        self.assertEqual({d["port"]: d["state"] for d in st["devices"]}, {"3-4": "hub", "3-4.1": "not-attached"})
        # nothing of the tool's there: a remove and a release are fine
        r = self.ok(self.tool.event(self.host, "remove", "3-4.1"))
        self.assertIn("libvirt domain lab: 3-4.1 (046d:c52b) was not attached; nothing to detach", r.stdout)
        r = self.ok(self.tool.run(["release", "lab"], host=self.host))
        self.assertIn("libvirt domain lab: released", r.stdout)
        # sync lifts the hold, and asks libvirt again (which again finds no device)
        r = self.failed(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("libvirt domain lab: no longer released", r.stdout)
        self.assertIn("libvirt domain lab: libvirt did not attach 3-4.1", r.stderr)

    def test_a_usb_disk_goes_to_a_domain_and_leaves_it(self):
        self.tool.guest_rules("lab", "3-4\ndisk 57584C\n")
        self.lv.start("lab", devices=libvirtsim.XHCI + "<controller type='scsi' model='virtio-scsi'/>")
        d = self.plug_disk("3-5", "sdb", "57584C")
        r = self.ok(self.disk_event("add", d))
        self.assertRegex(r.stdout, r"libvirt domain lab: attached disk WD_Elements_57584C-0:0 \(sdb, 67.1 MB\) as a SCSI disk sda \(usbdisk-[0-9a-f]{16}\)")
        xml = self.lv.live_xml("lab")
        self.assertIn("<source dev='%s/%s'" % (self.tool.disk_dir, d.link), xml)
        self.assertRegex(xml, r"<target dev='sda' bus='scsi'/>")
        self.assertRegex(xml, r"<alias name='ua-usbdisk-[0-9a-f]{16}'/>")
        self.assertTrue(self.opened_by_anyone(d.dev))
        st = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        self.assertEqual([(x["state"], x["driver"], x["held_by"]) for x in st["disks"]],
                         [("attached", "scsi-hd", ["lab"])])
        env = self.host.disk_env("remove", d.name, d)
        self.pull_disk(d)
        r = self.ok(self.tool.run(host=self.host, env=env))
        self.assertIn("libvirt domain lab: detached disk WD_Elements_57584C-0:0 (sdb)", r.stdout)
        self.assertNotIn("usbdisk-", self.lv.live_xml("lab"))
        self.assertFalse(self.opened_by_anyone(d.dev))

    def test_a_domain_that_is_not_running_gets_nothing(self):
        self.lv.start("lab")
        self.assertEqual(self.lv.virsh("destroy", "lab").returncode, 0)
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertIn("3-4.1 (046d:c52b): no running VM claims it; nothing to do", r.stdout)
        r = self.failed(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("libvirt domain lab is not running", r.stderr)

    def test_an_event_for_others_never_loads_libvirt(self):
        self.lv.start("lab")
        self.host.plug("3-5", 0x0781, 0x5581)
        env = {"LD_DEBUG": "files"}
        r = self.ok(self.tool.run(host=self.host, env=dict(self.host.event_env("add", "3-5"), **env)))
        self.assertFalse("file=libvirt.so" in r.stderr, "libvirt was loaded for an event of nobody's device")
        r = self.tool.run(host=self.host, env=dict(self.host.event_env("add", "3-4.1"), **env))
        self.assertTrue("file=libvirt.so.0" in r.stderr, "libvirt was not loaded for its own domain's device")

    def test_the_program_serves_as_libvirts_qemu_hook(self):
        # /etc/libvirt/hooks/qemu DOMAIN OPERATION SUB-OP EXTRA: at
        # "started", a sync of that domain in the background
        self.lv.start("lab")
        self.ok(self.tool.run(["release", "lab"], host=self.host))
        marker = os.path.join(self.tool.state_dir, "libvirt-lab.released")
        self.assertTrue(os.path.exists(marker))
        for args in (["other", "started", "begin", "-"], ["lab", "stopped", "end", "-"]):
            r = self.tool.run(args, host=self.host)
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""), args)
        self.assertTrue(os.path.exists(marker))
        r = self.tool.run(["lab", "started", "begin", "-"], host=self.host)
        # the hook returns at once, silent; the sync it started lifts the hold
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        deadline = time.monotonic() + 20
        while os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(os.path.exists(marker))

    def test_a_stopped_libvirtd_is_told(self):
        self.lv.stop()
        r = self.failed(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("libvirt domain lab: cannot connect to libvirt at %s" % self.lv.uri, r.stderr)

SCSI = "virtio-scsi-pci,id=scsihw0,bus=pci.0,addr=0x5"


class Disks(Case, LoopDisks):
    """USB disks as virtual disks: real loop devices for QEMU to open, the
    umockdev tree for what udev tells."""

    def disks(self, g):
        """{id: (driver, parent bus, node's file)} of the guest's usbdisk-* devices."""
        q = Qmp(g.qmp_path)
        try:
            nodes = {n["node-name"]: n["file"] for n in q.cmd("query-named-block-nodes", flat=True)}
            out = {}
            for item in q.cmd("qom-list", path="/machine/peripheral"):
                if not item["name"].startswith("usbdisk-"):
                    continue
                p = "/machine/peripheral/" + item["name"]
                drive = q.cmd("qom-get", path=p, property="drive")
                out[item["name"]] = (item["type"][6:-1],
                                     q.cmd("qom-get", path=p, property="parent_bus").rsplit("/", 1)[-1],
                                     nodes.get(drive))
            return out
        finally:
            q.close()

    def nodes(self, g):
        return sorted(n["node-name"] for n in g.qmp("query-named-block-nodes", flat=True)
                      if n["node-name"].startswith("usbdisk-"))

    def qemu_opens(self, g, dev):
        """Whether the guest's QEMU has the host block device open."""
        fds = "/proc/%d/fd" % g.proc.pid
        opened = []
        for f in os.listdir(fds):
            try:
                opened.append(os.readlink(os.path.join(fds, f)))
            except FileNotFoundError:   # closed while looked at
                pass
        return dev in opened

    def test_post_start_attaches_a_disk_as_scsi_and_not_its_usb_device(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "3-4\ndisk WD_Elements_57584C\n")
        self.host.hub("3-4")
        d = self.plug_disk("3-4.1", "sdb", "57584C")
        self.host.plug("3-4.2", 0x046D, 0xC52B)
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        # the hub's other device as a USB device; the enclosure only as its disk
        self.assertEqual(g.ports(), ["3-4.2"])
        self.assertIn("3-4.1 (1058:25a2 \"Elements 25A2\") carries a disk that VM 100 takes as a disk ('disk WD_Elements_57584C'", r.stdout)
        disks = self.disks(g)
        self.assertEqual(list(disks.values()), [("scsi-hd", "scsihw0.0", os.path.join(self.tool.disk_dir, d.link))])
        self.assertEqual(g.qmp("qom-get", path="/machine/peripheral/%s" % list(disks)[0], property="scsi-id"), 1)
        self.assertIn("VM 100: attached disk WD_Elements_57584C-0:0 (sdb, 67.1 MB) as a SCSI disk on scsihw0, scsi-id 1", r.stdout)
        self.assertTrue(self.qemu_opens(g, d.dev))

    def test_plug_and_pull_through_udev_leaves_nothing_open(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.tool.event(self.host, "add", "3-4"))      # the enclosure: left for its disk
        self.assertEqual(g.ports(), [])
        r = self.ok(self.disk_event("add", d))
        self.assertEqual([v[0] for v in self.disks(g).values()], ["scsi-hd"])
        self.assertTrue(self.qemu_opens(g, d.dev))
        env = self.host.disk_env("remove", d.name, d)
        self.pull_disk(d)
        r = self.ok(self.tool.run(host=self.host, env=env))
        self.assertEqual(self.disks(g), {})
        self.assertEqual(self.nodes(g), [])
        self.assertFalse(self.qemu_opens(g, d.dev))
        self.assertRegex(r.stdout, r"VM 100: detached disk WD_Elements_57584C-0:0 \(sdb\) \(usbdisk-[0-9a-f]{16}\): it was pulled out \(data the guest had not written to it yet is lost")

    def test_virtio_where_asked_or_without_a_scsi_controller(self):
        g = self.guest(100)                      # no SCSI controller
        self.tool.usb_conf(100, "disk 57584C\ndisk AAAA as virtio\ndisk BBBB as scsi\n")
        a = self.plug_disk("3-4", "sdb", "57584C")
        b = self.plug_disk("3-5", "sdc", "AAAA")
        self.plug_disk("3-6", "sdd", "BBBB")
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        got = sorted((drv, bus) for drv, bus, _ in self.disks(g).values())
        # in Proxmox's spare bridge slots, as the tool's own USB controller
        self.assertEqual(got, [("virtio-blk-pci", "pci.1"), ("virtio-blk-pci", "pci.2")])
        self.assertIn("VM 100: attached disk WD_Elements_57584C-0:0 (sdb, 67.1 MB) as a virtio disk at pci.1.0x1f", r.stdout)
        self.assertIn("VM 100: disk WD_Elements_BBBB-0:0 (sdd, 67.1 MB) is to go in as SCSI, but the VM has no virtio-scsi controller to put it on", r.stderr)
        self.assertTrue(self.qemu_opens(g, a.dev) and self.qemu_opens(g, b.dev))
        self.assertEqual(len(self.nodes(g)), 4)   # nothing left of the refused one
        # the guest sees the disk's own serial
        ids = {v[2]: k for k, v in self.disks(g).items()}
        dev = ids[os.path.join(self.tool.disk_dir, a.link)]
        self.assertEqual(g.qmp("qom-get", path="/machine/peripheral/" + dev, property="serial"), "57584C")

    def test_as_scsi_goes_on_scsihw0_next_to_proxmox_disks(self):
        g = self.guest(100, extra=[SCSI])
        # a disk of Proxmox's own at scsi-id 0, lun 1, and someone at scsi-id 1
        spare = self.loop()
        for node, dev in (("drive-scsi1", spare),):
            g.qmp("blockdev-add", driver="host_device", **{"node-name": node}, filename=dev)
        g.qmp("blockdev-add", driver="null-co", **{"node-name": "other"})
        g.qmp("device_add", driver="scsi-hd", id="scsi1", drive="drive-scsi1", bus="scsihw0.0",
              **{"scsi-id": 0}, lun=1)
        g.qmp("device_add", driver="scsi-hd", id="someone", drive="other", bus="scsihw0.0",
              **{"scsi-id": 1}, lun=0)
        self.tool.usb_conf(100, "disk 57584C as scsi\n")
        self.plug_disk("3-4", "sdb", "57584C")
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("as a SCSI disk on scsihw0, scsi-id 2", r.stdout)
        (dev,) = self.disks(g)
        self.assertEqual(g.qmp("qom-get", path="/machine/peripheral/" + dev, property="lun"), 0)

    def test_deny_disk_keeps_the_disk_and_its_usb_device_on_the_host(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "3-4\ndeny disk WD_Elements_57584C\n")
        self.host.hub("3-4")
        d = self.plug_disk("3-4.1", "sdb", "57584C")
        self.host.plug("3-4.2", 0x046D, 0xC52B)
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4.2"])
        self.assertEqual(self.disks(g), {})
        r = self.ok(self.disk_event("add", d))
        self.assertEqual(self.disks(g), {})
        self.assertFalse(self.qemu_opens(g, d.dev))
        self.assertIn("kept out of VM 100 by 'deny disk WD_Elements_57584C'", r.stdout)
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertEqual(g.ports(), ["3-4.2"])
        self.assertIn("3-4.1 (1058:25a2 \"Elements 25A2\") is kept out of VM 100 by 'deny disk WD_Elements_57584C'", r.stdout)

    def test_check_names_bad_disk_lines(self):
        f = self.tool.usb_conf(100, "disk\ndisk \"\"\ndisk X as floppy\ndeny disk X as scsi\ndisk X Y\n"
                                    "disk \"WD Elements 1\" as virtio\ndeny disk Z\n")
        r = self.failed(self.tool.run(["check", "100"]))
        self.assertIn("%s:1: 'disk' needs a value, e.g. 'disk WD-WX12A3456789'; line ignored" % f, r.stderr)
        self.assertIn("%s:2: an empty serial matches nothing; leave the line out; line ignored" % f, r.stderr)
        self.assertIn("%s:3: 'as floppy': a disk goes in as scsi or virtio; line ignored" % f, r.stderr)
        self.assertIn("%s:4: 'deny disk' takes a serial alone; 'as' says how a disk is passed, and a denied one is not; line ignored" % f, r.stderr)
        self.assertIn("%s:5: unexpected 'Y'; a line is 'disk SERIAL [as scsi|virtio]' (quote a serial with spaces); line ignored" % f, r.stderr)
        self.assertIn("%s: 5 bad line(s), 2 good rule(s)" % f, r.stderr)

    def test_status_shows_disks_and_who_has_them(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        self.tool.usb_conf(101, "deny disk CCCC\n")
        self.plug_disk("3-4", "sdb", "57584C")
        self.plug_disk("3-5", "sdc", "CCCC")
        self.plug_disk("3-6", "sdd", "DDDD")
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertIn("  sdb      67.1 MB  WD_Elements_57584C-0:0 at 3-4  VM 100: NOT attached ('disk 57584C', 100.usb.conf:1); 'pve-usb-hotplug sync' attaches it", r.stdout)
        self.ok(self.tool.run(["sync"], host=self.host))
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertRegex(r.stdout, r"  sdb      67.1 MB  WD_Elements_57584C-0:0 at 3-4  VM 100: attached as scsi-hd usbdisk-[0-9a-f]{16} \('disk 57584C', 100.usb.conf:1\)")
        self.assertIn("  sdc      67.1 MB  WD_Elements_CCCC-0:0 at 3-5  denied to VM 101 ('deny disk CCCC', 101.usb.conf:1); stays on the host", r.stdout)
        self.assertIn("  sdd      67.1 MB  WD_Elements_DDDD-0:0 at 3-6  on the host (no disk rule names it)", r.stdout)
        self.assertIn("3-4              1058:25a2    480M  \"Elements 25A2\"          carries a disk for VM 100 ('disk 57584C', 100.usb.conf:1); see USB disks below", r.stdout)
        j = json.loads(self.ok(self.tool.run(["status", "100", "--json"], host=self.host)).stdout)
        self.assertEqual([(d["name"], d["serial"], d["serial_short"], d["size"], d["state"], d["driver"], d["held_by"])
                          for d in j["disks"]],
                         [("sdb", "WD_Elements_57584C-0:0", "57584C", 64 << 20, "attached", "scsi-hd", ["100"])])
        self.assertEqual(j["vms"][0]["disks"], [j["disks"][0]["device"]])

    def test_release_lets_go_of_disks_and_sync_brings_them_back(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        r = self.ok(self.tool.run(["release", "100"], host=self.host))
        self.assertIn("VM 100: detached disk %s (" % d.link, r.stdout)
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))
        self.assertFalse(self.qemu_opens(g, d.dev))
        self.ok(self.disk_event("add", d))          # a released VM takes nothing
        self.assertEqual(self.disks(g), {})
        self.ok(self.tool.run(["sync", "100"], host=self.host))
        self.assertEqual(len(self.disks(g)), 1)
        # rules changed: sync takes it away again
        self.tool.usb_conf(100, "3-9\n")
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertIn("no rule of this VM gives it the disk any more", r.stdout)
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))

    def test_a_disk_the_host_uses_is_refused(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        subprocess.run(["mkfs.ext2", "-q", "-F", d.dev], check=True, capture_output=True)
        mnt = os.path.join(self.dir, "mnt")
        os.mkdir(mnt)
        argv, env = self.tool.cmd(["100", "post-start"], self.host)
        # mounted in a mount namespace of its own, which the program runs in
        r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount "$0" "$1" && shift && exec "$@"', d.dev, mnt] + argv,
                           env=env, capture_output=True, text=True, timeout=60)
        self.failed(r)
        self.assertIn("VM 100: disk WD_Elements_57584C-0:0 (sdb, 67.1 MB) is not attached: /dev/sdb is mounted on the host at %s; a disk must be in one place at a time" % mnt, r.stderr)
        self.assertEqual(self.disks(g), {})
        self.ok(self.tool.run(["100", "post-start"], host=self.host))   # unmounted
        self.assertEqual(len(self.disks(g)), 1)

    def test_a_remove_without_the_serial_still_lets_go(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.disk_event("add", d))
        env = self.host.disk_env("remove", d.name, d)
        for k in ("ID_SERIAL", "ID_SERIAL_SHORT", "ID_USB_SERIAL", "ID_USB_SERIAL_SHORT", "DEVLINKS"):
            del env[k]
        self.pull_disk(d)
        r = self.ok(self.tool.run(host=self.host, env=env))
        self.assertIn("VM 100: detached disk %s (" % d.link, r.stdout)
        self.assertIn("its disk is gone from the host", r.stdout)
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))
        self.assertFalse(self.qemu_opens(g, d.dev))

    def test_a_pulled_disk_leaves_a_vm_whose_rules_changed(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.disk_event("add", d))
        os.unlink(os.path.join(self.tool.vm_dir, "100.usb.conf"))
        env = self.host.disk_env("remove", d.name, d)
        self.pull_disk(d)
        self.ok(self.tool.run(host=self.host, env=env))
        self.assertFalse(self.qemu_opens(g, d.dev))

    def test_a_disk_plugged_again_after_a_missed_remove_replaces_the_dead_one(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        first = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.disk_event("add", first))
        self.assertTrue(self.qemu_opens(g, first.dev))
        # pulled out and plugged in again; the remove never reached the
        # program: the link now names the new device, QEMU holds the old one
        self.pull_disk(first)
        again = self.plug_disk("3-4", "sdc", "57584C")
        r = self.ok(self.disk_event("add", again))
        self.assertIn("QEMU holds another device under that name (an earlier disk with this serial, whose removal was missed): replaced", r.stderr)
        self.assertTrue(self.qemu_opens(g, again.dev))
        self.assertFalse(self.qemu_opens(g, first.dev))
        self.assertEqual([v[0] for v in self.disks(g).values()], ["scsi-hd"])
        # the same event once more: attached already, nothing replaced
        r = self.ok(self.disk_event("add", again))
        self.assertIn("is attached already", r.stdout)
        self.assertNotIn("replaced", r.stderr)

    def test_a_card_reader_follows_its_medium(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 000000000819\n")
        d = self.plug_disk("3-4", "sdb", "000000000819", size=0, vendor="Generic", model="SD_MMC")
        r = self.ok(self.disk_event("add", d))         # no card yet
        self.assertIn("disk Generic_SD_MMC_000000000819-0:0 (sdb) has no medium; it is attached when one is put in", r.stdout)
        self.assertEqual(self.disks(g), {})
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("has no medium (a card reader without a card?); it is attached when one is put in", r.stdout)
        d.size = 32 << 20                                # a card goes in
        self.ok(self.disk_event("media", d))
        self.assertEqual([v[0] for v in self.disks(g).values()], ["scsi-hd"])
        self.assertTrue(self.qemu_opens(g, d.dev))
        d.size = 0                                       # and out again
        r = self.ok(self.disk_event("media", d))
        self.assertIn("VM 100: detached disk Generic_SD_MMC_000000000819-0:0 (sdb)", r.stdout)
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))
        self.assertFalse(self.qemu_opens(g, d.dev))

    def test_ata_passthrough_disk_by_the_drives_serial(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk WD-WX12A3456789\n")
        d = self.plug_disk("3-4", "sdb", "0123456789AB", ata_serial="WD-WX12A3456789")
        self.ok(self.disk_event("add", d))
        self.assertEqual([v[0] for v in self.disks(g).values()], ["scsi-hd"])

    def test_two_running_vms_claiming_one_disk_get_neither(self):
        a = self.guest(100, extra=[SCSI])
        b = self.guest(101, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        self.tool.usb_conf(101, "disk WD_Elements_57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        r = self.failed(self.disk_event("add", d))
        self.assertIn("is claimed equally by VM 100", r.stderr)
        self.assertIn("keep the disk rule in one of them", r.stderr)
        self.assertEqual((self.disks(a), self.disks(b)), ({}, {}))
        # one of them had it first: it keeps it
        self.tool.usb_conf(101, "")
        self.ok(self.disk_event("add", d))
        self.tool.usb_conf(101, "disk WD_Elements_57584C\n")
        r = self.ok(self.disk_event("add", d))
        self.assertIn("stays with VM 100", r.stdout)
        self.assertEqual((len(self.disks(a)), self.disks(b)), (1, {}))



class Summary(unittest.TextTestResult):
    pass


def main():
    global BINARY
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--plug", required=True, help="the umockdev-plug test helper")
    ap.add_argument("-k", dest="pattern", action="append")
    args = ap.parse_args()
    BINARY = args.binary
    Tool.plug_helper = os.path.abspath(args.plug)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = ["*%s*" % p for p in args.pattern]
    suite = loader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2, resultclass=Summary).run(suite)
    failed = len(result.failures) + len(result.errors)
    print("e2e: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
