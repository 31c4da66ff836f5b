#!/usr/bin/env python3
"""End-to-end tests: the built binary, under umockdev, against real QEMU guests.

Each test builds a host USB tree, starts Proxmox-layout guests with their QMP
sockets in a temporary directory, runs the program as Proxmox (hookscript) or
udev (event in the environment) would, and asks the guests over QMP what they
really have.
"""
import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pvesim import Guest, Host, Qmp, Tool  # noqa: E402

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

    def guest(self, vmid, **kw):
        g = Guest(vmid, self.tool.qmp_dir, **kw)
        self.guests.append(g)
        return g

    def ok(self, r):
        self.assertEqual(r.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout, r.stderr))
        self.assertNotIn("AddressSanitizer", r.stderr)
        self.assertNotIn("runtime error", r.stderr)
        return r

    def failed(self, r):
        self.assertNotEqual(r.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout, r.stderr))
        self.assertNotIn("AddressSanitizer", r.stderr)
        return r


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
        self.assertEqual(hosts["usbhost3-4.2.4.1"], {"hostbus": 3, "hostport": "4.2.4.1", "bus": "xhci.0"})
        for h in hosts.values():
            self.assertEqual(h["bus"], "xhci.0")
        self.assertIn("VM 100: attached 3-4.1 (046d:c52b \"Receiver\") as usbhost3-4.1 on xhci.0", r.stdout)
        self.assertEqual(r.stdout.count("attached"), 3, r.stdout)

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
        self.assertIn("%s:4: '3-x' is neither a port nor a known rule (expected BUS-PORT[.PORT...] such as 3-4 or 3-4.1); line ignored" % conf, r.stderr)
        self.assertIn("%s:6: unexpected text after the port; one rule a line; line ignored" % conf, r.stderr)
        self.assertEqual(g.ports(), ["3-4", "5-1"])

    def test_pre_start_warns_but_never_fails(self):
        conf = self.tool.usb_conf(100, "3-4\nbogus\n")
        r = self.ok(self.tool.run(["100", "pre-start"]))
        self.assertIn("%s:2: 'bogus' is neither a port" % conf, r.stderr)
        self.assertIn("VM 100: 1 line(s) of %s ignored; the VM starts anyway" % conf, r.stderr)
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

    def test_vm_without_xhci_gets_a_clear_error(self):
        self.guest(100, xhci=False)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0xABCD, 0x0001)
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("VM 100: no xHCI (USB 3) controller to attach 3-4 (abcd:0001) to", r.stderr)


class Udev(Case):
    def test_add_and_remove(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.hub("3-4.3")
        d = self.host.plug("3-4.3.1", 0x046D, 0xC52B)
        r = self.ok(self.tool.event(self.host, "add", "3-4.3.1"))
        self.assertIn("VM 100: attached 3-4.3.1 (046d:c52b) as usbhost3-4.3.1 on xhci.0", r.stdout)
        self.assertEqual(g.usb_hosts(), {"usbhost3-4.3.1": {"hostbus": 3, "hostport": "4.3.1", "bus": "xhci.0"}})
        self.host.unplug("3-4.3.1")
        r = self.ok(self.tool.event(self.host, "remove", "3-4.3.1", dev=d))
        self.assertIn("VM 100: detached 3-4.3.1 (046d:c52b) (usbhost3-4.3.1)", r.stdout)
        self.assertEqual(g.ports(), [])
        # a second remove (or one for a device never attached) is fine
        self.ok(self.tool.event(self.host, "remove", "3-4.3.1", dev=d))

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
        self.assertIn("%s:10: timeout_ms must be a whole number of milliseconds from 10 to 600000 (got 'soon')" % self.tool.config, r.stderr)
        self.assertIn("%s:12: unknown key 'colour' in section [paths]" % self.tool.config, r.stderr)

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
        self.assertIn("%s:2: 'port' needs a port, e.g. 'port 3-4'; line ignored" % b, r.stderr)
        self.assertIn("%s:3: '3-4.x' is neither a port" % b, r.stderr)
        self.assertIn("%s: 2 bad line(s), 1 good rule(s)" % b, r.stderr)
        self.ok(self.tool.run(["check", "100"]))
        r = self.failed(self.tool.run(["check", "102"]))
        self.assertIn("VM 102 has no %s/102.usb.conf" % self.tool.vm_dir, r.stderr)

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
        # the shipped settings file as it is, then only the paths pointed here
        with open(os.path.join(examples, "pve-usb-hotplug.conf")) as f:
            shipped = f.read()
        with open(self.tool.config) as f:
            ours = f.read()
        with open(self.tool.config, "w") as f:
            f.write(shipped + "\n" + ours)
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("%s: valid" % self.tool.config, r.stdout)
        self.assertIn("100.usb.conf: 2 rule(s), all valid", r.stdout)
        self.assertEqual(r.stderr, "")
        with open(os.path.join(examples, "100.conf")) as f:
            self.assertIn("\nhookscript: local:snippets/pve-usb-hotplug\n", f.read())


class Summary(unittest.TextTestResult):
    pass


def main():
    global BINARY
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("-k", dest="pattern", action="append")
    args = ap.parse_args()
    BINARY = args.binary
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
