"""End-to-end tests, area hardening (`make check-e2e AREA=hardening` runs it alone): a hostile local
user and a careless admin."""
import json
import os
import time

from .harness import Case, FakeQmp, stamp


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
            f.write("stamp %s\nctrl uhci 15 15 0\n" % stamp(g))
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
