"""End-to-end tests, area udev (`make check-e2e AREA=udev` runs it alone): udev's events: add and
remove, the listener, `plugged`, which VM wins."""
import os
import socket
import subprocess
import threading
import time

from .harness import Case, Host, Qmp


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
