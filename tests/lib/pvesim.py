"""A simulated Proxmox VE host for the tests and the demo.

Host   -- a USB tree written as a umockdev file (controllers, hubs, devices,
          interfaces), so that libudev and /sys reads of the program see it.
Guest  -- a real qemu-system-x86_64 laid out as Proxmox lays out a VM, with
          its QMP socket where the program looks for it; asked over QMP which
          USB devices it really has.
Tool   -- runs the built binary under umockdev with settings pointing into a
          temporary directory, never at the live system.
"""
import json
import os
import socket
import subprocess
import time

# the QEMU to run guests with: Debian 12's by default, another (trixie's
# QEMU 10 through tests/trixie.sh, QEMU 11 through tests/qemu11.sh) when
# PUH_QEMU names it
QEMU = os.environ.get("PUH_QEMU") or "qemu-system-x86_64"


class UsbDev:
    def __init__(self, port, vid, pid, cls=0, speed="480", product="", serial="", interfaces=1,
                 mass_storage=False):
        self.port = port                # "3-4.1"
        self.vid, self.pid = vid, pid   # ints
        self.cls = cls                  # bDeviceClass, 9 = hub
        self.speed, self.product, self.serial = speed, product, serial
        self.interfaces = interfaces
        self.mass_storage = mass_storage  # its interfaces are class 08


    @property
    def bus(self):
        return int(self.port.split("-")[0])

    @property
    def hostport(self):
        return self.port.split("-", 1)[1]


class UsbDisk:
    """A whole disk on a USB mass storage device, as udev describes it; its
    block device numbers are a real device's (a loop device), so that QEMU
    can open it through the link in the test's by-id directory."""

    def __init__(self, port, name, serial_short, rdev, size, vendor="WD", model="Elements",
                 ata_serial=None):
        self.port, self.name, self.serial_short = port, name, serial_short
        self.major, self.minor = os.major(rdev), os.minor(rdev)
        self.size, self.vendor, self.model = size, vendor, model
        self.ata_serial = ata_serial   # a bridge that passes ATA through: the drive's own
        self.partitions = []            # [(name, rdev)]: "sdb1" and a real partition's numbers

    @property
    def usb_serial(self):
        # udev's usb_id ends it with the LUN (measured in the real-host bed)
        return "%s_%s_%s-0:0" % (self.vendor, self.model, self.serial_short)

    @property
    def serial(self):
        return "%s_%s" % (self.model, self.ata_serial) if self.ata_serial else self.usb_serial

    @property
    def link(self):
        """Its name in /dev/disk/by-id."""
        return "usb-%s" % self.usb_serial

    def props(self, host):
        p = {"SUBSYSTEM": "block", "DEVTYPE": "disk", "DEVNAME": "/dev/" + self.name,
             "MAJOR": str(self.major), "MINOR": str(self.minor),
             "ID_BUS": "ata" if self.ata_serial else "usb", "ID_MODEL": self.model,
             "ID_SERIAL": self.serial,
             "ID_SERIAL_SHORT": self.ata_serial or self.serial_short,
             "ID_USB_SERIAL": self.usb_serial, "ID_USB_SERIAL_SHORT": self.serial_short,
             "ID_PATH": "%s:1.0-scsi-0:0:0:0" % host.id_path(self.port),
             "DEVLINKS": "/dev/disk/by-id/%s /dev/disk/by-path/%s:1.0-scsi-0:0:0:0"
                         % (self.link, host.id_path(self.port))}
        return p


class Host:
    """The host's USB tree. Ports of hubs must be added before what is behind them."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.devices = {}   # port -> UsbDev
        self.n = 0
        self.pci = {}       # bus -> PCI function of its controller, e.g. "0000:00:14.0"
        self.disks = {}     # name -> UsbDisk

    def controller(self, bus):
        pci = self.pci.get(bus, "0000:00:%02x.0" % (bus % 32))
        return "/devices/pci0000:00/%s/usb%d" % (pci, bus)

    def id_path(self, port):
        """udev's ID_PATH of the device at port."""
        bus, rest = port.split("-", 1)
        return "pci-%s-usb-0:%s" % (self.controller(int(bus)).split("/")[3], rest)

    def devpath(self, port):
        bus, rest = port.split("-", 1)
        parts = rest.split(".")
        path = self.controller(int(bus))
        for i in range(len(parts)):
            path += "/%s-%s" % (bus, ".".join(parts[: i + 1]))
        return path

    def plug(self, port, vid=0x1234, pid=0x5678, **kw):
        d = UsbDev(port, vid, pid, **kw)
        self.devices[port] = d
        return d

    def disk_devpath(self, d):
        return "%s/%s:1.0/host6/target6:0:0/6:0:0:0/block/%s" % (self.devpath(d.port), d.port, d.name)

    def plug_disk(self, port, name, serial_short, rdev, size=64 << 20, vid=0x1058, pid=0x25A2,
                  **kw):
        """A USB disk enclosure at port with one disk (kw: UsbDisk's)."""
        self.plug(port, vid, pid, serial=serial_short, product="Elements 25A2", mass_storage=True)
        d = UsbDisk(port, name, serial_short, rdev, size, **kw)
        self.disks[name] = d
        return d

    def disk_env(self, action, name, d=None):
        """The environment udev gives a RUN+= program for a disk's event
        ("media": a card reader's change of medium)."""
        d = d or self.disks[name]
        env = {"ACTION": action, "SEQNUM": "1", "DEVPATH": self.disk_devpath(d)}
        if action == "media":
            env.update(ACTION="change", DISK_MEDIA_CHANGE="1")
        env.update(d.props(self))
        return env

    def hub(self, port, speed="480"):
        return self.plug(port, 0x05E3, 0x0608, cls=9, speed=speed, product="USB2.0 Hub")

    def unplug(self, port):
        """Removes the device and everything behind it."""
        gone = [p for p in self.devices if p == port or p.startswith(port + ".")]
        for p in gone:
            del self.devices[p]
        for name in [n for n, d in self.disks.items() if d.port in gone]:
            del self.disks[name]
        return gone

    def event_env(self, action, port, dev=None, interface=None):
        """The environment udev gives a RUN+= program for this event."""
        d = dev or self.devices[port]
        path = self.devpath(port)
        env = {"ACTION": action, "SUBSYSTEM": "usb", "SEQNUM": "1"}
        if interface is not None:
            env.update(DEVPATH="%s/%s:1.%d" % (path, port, interface), DEVTYPE="usb_interface",
                       INTERFACE="3/1/2", PRODUCT="%x/%x/100" % (d.vid, d.pid),
                       TYPE="%d/0/0" % d.cls)
            return env
        env.update(DEVPATH=path, DEVTYPE="usb_device", BUSNUM="%03d" % d.bus, DEVNUM="005",
                   PRODUCT="%x/%x/100" % (d.vid, d.pid), TYPE="%d/0/0" % d.cls,
                   ID_VENDOR_ID="%04x" % d.vid, ID_MODEL_ID="%04x" % d.pid)
        return env

    @staticmethod
    def attr(name, value):
        """A sysfs attribute line; any bytes (what a device may report) go hex-encoded."""
        if not value:
            return []
        raw = value if isinstance(value, bytes) else value.encode()
        if all(0x20 <= c < 0x7f and c != 0x5c for c in raw):
            return [("A", "%s=%s" % (name, raw.decode()))]
        return [("H", "%s=%s" % (name, raw.hex()))]

    def write(self, name="host.umockdev", roots=True):
        blocks = []
        buses = sorted({d.bus for d in self.devices.values()} or {1}) if roots else []
        for bus in buses:
            blocks.append([("P", self.controller(bus)), ("E", "SUBSYSTEM=usb"),
                           ("E", "DEVTYPE=usb_device"), ("A", "bDeviceClass=09"),
                           ("A", "busnum=%d" % bus), ("A", "devnum=1"), ("A", "devpath=0"),
                           ("A", "speed=480"), ("A", "idVendor=1d6b"), ("A", "idProduct=0002")])
        for i, (port, d) in enumerate(sorted(self.devices.items(), key=lambda kv: kv[0].count("."))):
            path = self.devpath(port)
            attrs = [("P", path), ("E", "SUBSYSTEM=usb"), ("E", "DEVTYPE=usb_device"),
                     ("E", "BUSNUM=%03d" % d.bus), ("E", "DEVNUM=%03d" % (i + 2)),
                     ("A", "bDeviceClass=%02x" % d.cls), ("A", "busnum=%d" % d.bus),
                     ("A", "devnum=%d" % (i + 2)), ("A", "devpath=%s" % d.hostport),
                     ("A", "idVendor=%04x" % d.vid), ("A", "idProduct=%04x" % d.pid),
                     ("A", "speed=%s" % d.speed)]
            for attr in ("product", "serial"):
                attrs += self.attr(attr, getattr(d, attr))
            if d.mass_storage:
                attrs.append(("E", "ID_USB_INTERFACES=:080650:"))
            blocks.append(attrs)
            for k in range(d.interfaces):
                blocks.append([("P", "%s/%s:1.%d" % (path, port, k)), ("E", "SUBSYSTEM=usb"),
                               ("E", "DEVTYPE=usb_interface"),
                               ("A", "bInterfaceClass=%s" % ("08" if d.mass_storage else "03"))])
        for name, d in sorted(self.disks.items()):
            blocks.append([("P", self.disk_devpath(d))] +
                          [("E", "%s=%s" % kv) for kv in d.props(self).items()] +
                          [("A", "size=%d" % (d.size // 512))])
            for part, rdev in d.partitions:
                blocks.append([("P", "%s/%s" % (self.disk_devpath(d), part)),
                               ("E", "SUBSYSTEM=block"), ("E", "DEVTYPE=partition"),
                               ("E", "DEVNAME=/dev/%s" % part), ("E", "MAJOR=%d" % os.major(rdev)),
                               ("E", "MINOR=%d" % os.minor(rdev))])
        text = "\n\n".join("\n".join("%s: %s" % kv for kv in b) for b in blocks) + "\n"
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path


class QmpError(Exception):
    pass


class Qmp:
    """A minimal QMP client, independent of the program under test."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        # a full listen backlog says EAGAIN: wait for room; a QEMU that has
        # bound its socket but not yet listened on it says ECONNREFUSED
        while True:
            try:
                self.sock.connect(path)
                break
            except (BlockingIOError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.f = self.sock.makefile("rw")
        # what QEMU still had to say to the previous client (an event) may
        # come before the greeting (seen with QEMU 10 on a loaded machine)
        greeting = json.loads(self.f.readline())
        while "event" in greeting:
            greeting = json.loads(self.f.readline())
        assert "QMP" in greeting, greeting
        self.cmd("qmp_capabilities")

    def cmd(self, execute, **args):
        msg = {"execute": execute}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise QmpError("connection closed")
            r = json.loads(line)
            if "event" in r:
                continue
            if "error" in r:
                raise QmpError(r["error"]["desc"])
            return r["return"]

    def close(self):
        self.f.close()
        self.sock.close()


def qmp_once(socket_path, execute, **args):
    """One command on its own connection (QMP serves one client at a time)."""
    q = Qmp(socket_path)
    try:
        return q.cmd(execute, **args)
    finally:
        q.close()


class Guest:
    """A running QEMU laid out as Proxmox lays out a VM (i440fx)."""

    def __init__(self, vmid, qmp_dir, xhci="p2=15,p3=15", bridge=True, extra=(), incoming=None):
        """xhci: the properties of Proxmox's controller "xhci", or None for a
        VM without one; bridge: Proxmox's pci.1 and pci.2; extra: more -device
        values; incoming: a migration URI to wait on (a migration target)."""
        self.vmid = vmid
        self.qmp_path = os.path.join(qmp_dir, "%d.qmp" % vmid)
        self.pid_path = os.path.join(qmp_dir, "%d.pid" % vmid)
        args = [QEMU, "-machine", "pc", "-nodefaults", "-display", "none", "-S",
                "-device", "piix3-usb-uhci,id=uhci,bus=pci.0,addr=0x1.0x2",
                "-device", "usb-tablet,id=tablet,bus=uhci.0,port=1"]
        if bridge:   # as Proxmox lays out i440fx (machine >= 2.3)
            args += ["-device", "pci-bridge,id=pci.1,chassis_nr=1,bus=pci.0,addr=0x1e",
                     "-device", "pci-bridge,id=pci.2,chassis_nr=2,bus=pci.0,addr=0x1f"]
        if xhci:
            args += ["-device", "qemu-xhci,%s,id=xhci,bus=%s,addr=0x1b" % (xhci, "pci.1" if bridge else "pci.0")]
        for d in extra:
            args += ["-device", d]
        args += ["-qmp", "unix:%s,server=on,wait=off" % self.qmp_path, "-pidfile", self.pid_path]
        if incoming:
            args += ["-incoming", incoming]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not (os.path.exists(self.qmp_path) and os.path.exists(self.pid_path)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("QEMU did not start: %s" % self.proc.stderr.read().decode())
            time.sleep(0.01)

    def qmp(self, execute, **args):
        return qmp_once(self.qmp_path, execute, **args)

    def usb_hosts(self, with_port=False):
        """{id: {"hostbus", "hostport", "bus"[, "port"]}} of every usb-host device the guest has."""
        q = Qmp(self.qmp_path)
        try:
            out = {}
            for item in q.cmd("qom-list", path="/machine/peripheral"):
                if item["type"] != "child<usb-host>":
                    continue
                p = "/machine/peripheral/" + item["name"]
                out[item["name"]] = {
                    "hostbus": q.cmd("qom-get", path=p, property="hostbus"),
                    "hostport": q.cmd("qom-get", path=p, property="hostport"),
                    "bus": q.cmd("qom-get", path=p, property="parent_bus").rsplit("/", 1)[-1],
                }
                if with_port:
                    out[item["name"]]["port"] = q.cmd("qom-get", path=p, property="port")
            return out
        finally:
            q.close()

    def ports(self):
        """Sorted "BUS-PORT" of the host ports the guest has attached."""
        return sorted("%s-%s" % (v["hostbus"], v["hostport"]) for v in self.usb_hosts().values())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        for p in (self.qmp_path, self.pid_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


class PlainGuest(Guest):
    """A QEMU started by hand, not by Proxmox: a QMP socket at qmp_path and
    whatever args add (no pid file unless pidfile is given)."""

    def __init__(self, qmp_path, args=(), machine="pc", name=None, pidfile=None):
        self.vmid = None
        self.qmp_path = qmp_path
        self.pid_path = pidfile or os.path.join(os.path.dirname(qmp_path), ".no-pidfile")
        argv = [QEMU, "-machine", machine, "-nodefaults", "-display", "none", "-S"] + list(args)
        argv += ["-qmp", "unix:%s,server=on,wait=off" % qmp_path]
        if name:
            argv += ["-name", name]
        if pidfile:
            argv += ["-pidfile", pidfile]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not (os.path.exists(qmp_path) and (not pidfile or os.path.exists(pidfile))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("QEMU did not start: %s" % self.proc.stderr.read().decode())
            time.sleep(0.01)

    def parent_bus(self, dev_id):
        """The QOM path of the bus a device sits on."""
        return self.qmp("qom-get", path="/machine/peripheral/" + dev_id, property="parent_bus")


class Tool:
    """The program under test, pointed at a temporary 'host'."""

    def __init__(self, binary, workdir, timeout_ms=3000, extra=""):
        self.binary = os.path.abspath(binary)
        self.workdir = workdir
        self.vm_dir = os.path.join(workdir, "qemu-server-conf")
        self.qmp_dir = os.path.join(workdir, "qemu-server-run")
        self.state_dir = os.path.join(workdir, "state")
        self.disk_dir = os.path.join(workdir, "by-id")   # the host's /dev/disk/by-id
        os.makedirs(self.vm_dir, exist_ok=True)
        os.makedirs(self.disk_dir, exist_ok=True)
        os.makedirs(self.qmp_dir, exist_ok=True)
        self.config = os.path.join(workdir, "pve-usb-hotplug.conf")
        # systemd-run stand-in: records each call, one line of arguments each
        self.retries = os.path.join(workdir, "retries")
        self.systemd_run = os.path.join(workdir, "systemd-run")
        with open(self.systemd_run, "w") as f:
            f.write('#!/bin/sh\nprintf "%%s\\n" "$*" >> %s\n' % self.retries)
        os.chmod(self.systemd_run, 0o755)
        self.write_settings(timeout_ms, extra)

    def write_settings(self, timeout_ms=3000, extra=""):
        with open(self.config, "w") as f:
            f.write("[paths]\nvm_config_dir = %s\nqmp_socket_dir = %s\nstate_dir = %s\ndisk_dir = %s\n"
                    "[qmp]\ntimeout_ms = %d\n[retry]\ncommand = %s\n[log]\nsyslog = no\n%s"
                    % (self.vm_dir, self.qmp_dir, self.state_dir, self.disk_dir, timeout_ms,
                       self.systemd_run, extra))

    def retry_calls(self):
        """The argument lines systemd-run was called with."""
        try:
            with open(self.retries) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def vm_conf(self, vmid, text):
        """Proxmox's own <vmid>.conf."""
        path = os.path.join(self.vm_dir, "%d.conf" % vmid)
        with open(path, "w") as f:
            f.write(text)
        return path

    def declare(self, text):
        """A drop-in settings file (<settings>.d/guests.conf): [qemu NAME]..."""
        os.makedirs(self.config + ".d", exist_ok=True)
        path = os.path.join(self.config + ".d", "guests.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def guest_rules(self, name, text):
        """A declared guest's rules at their default place."""
        os.makedirs(self.config + ".d", exist_ok=True)
        path = os.path.join(self.config + ".d", "%s.usb.conf" % name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def usb_conf(self, vmid, text):
        path = os.path.join(self.vm_dir, "%d.usb.conf" % vmid)
        with open(path, "w") as f:
            f.write(text)
        return path

    def cmd(self, args, host=None, env=None):
        """argv for one run (under umockdev when a host tree is given) and its environment."""
        e = {k: v for k, v in os.environ.items()
             if k not in ("ACTION", "DEVPATH", "SUBSYSTEM", "DEVTYPE", "TYPE", "PRODUCT", "BUSNUM")}
        e["PVE_USB_HOTPLUG_CONFIG"] = self.config
        e.setdefault("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=1")
        e.update(env or {})
        argv = [self.binary] + list(args)
        if os.environ.get("PUH_VALGRIND") == "1":
            # every run under valgrind: any error or leak fails the test
            argv = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                    "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
                    "--track-fds=no"] + argv
        if host is not None:
            argv = ["umockdev-run", "--device", host.write()] + ["--"] + argv
        return argv, e

    def run(self, args=(), host=None, env=None, timeout=60):
        argv, e = self.cmd(args, host, env)
        return subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout)

    plug_helper = None  # tests/helpers/umockdev-plug, built

    def run_while_plugging(self, args, host, new, marker="Plug the USB device in now", timeout=60):
        """Runs the program on host's tree; once it has printed marker (it
        listens now) the devices of the Host new appear, and udev announces
        the first of them."""
        argv, e = self.cmd(args)
        tree, extra = host.write(), new.write("new.umockdev", roots=False)
        argv = ["umockdev-wrapper", self.plug_helper, tree, extra, marker, "--"] + argv
        r = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout)
        if r.returncode < 0 and "uevent_sender sendmsg_one: sendmsg failed" in r.stderr:
            # umockdev's own uevent sender gave up (seen once in about ten
            # runs of the suite: "Connection refused" from its socket, and
            # the helper aborts): the plug never happened; plug again
            r = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout)
        return r

    def event(self, host, action, port, dev=None, interface=None):
        return self.run(host=host, env=host.event_env(action, port, dev, interface))
