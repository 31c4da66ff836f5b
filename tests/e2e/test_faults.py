"""End-to-end tests, area faults (`make check-e2e AREA=faults` runs it alone): a QMP peer that
misbehaves, locks, bad files and directories, and a storm of events."""
import os
import shutil
import socket
import subprocess
import time

from .harness import Case, FakeQmp


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
