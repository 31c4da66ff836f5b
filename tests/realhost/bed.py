"""The real-host test bed: a real kernel, the stock systemd-udevd and the
installed package in a VM, with USB devices plugged in and pulled out at run
time through the outer QEMU.

Bed.prepare() fetches Debian's kernel and busybox (once, into .realhost/),
builds the initramfs; Bed() boots the outer QEMU (TCG: this host's /dev/kvm
cannot boot a stock kernel) and waits for the agent; run() runs a command in
the guest; plug()/unplug() use the outer QMP."""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.path.join(TOP, ".realhost")
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from pvesim import qmp_once  # noqa: E402

EARLY_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"]


def sh(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def kernel_root():
    return os.path.join(CACHE, "root")


def prepare():
    """Debian's kernel and busybox-static, unpacked into .realhost/root."""
    root = kernel_root()
    if os.path.exists(os.path.join(CACHE, ".ready")):
        return
    shutil.rmtree(CACHE, ignore_errors=True)
    os.makedirs(CACHE)
    deps = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True,
                          check=True).stdout
    image = [l.split()[-1] for l in deps.splitlines() if "Depends: linux-image-" in l][0]
    sh(["apt-get", "download", "-q", image, "busybox-static"], cwd=CACHE, stdout=subprocess.DEVNULL)
    for deb in glob.glob(os.path.join(CACHE, "*.deb")):
        sh(["dpkg-deb", "-x", deb, root])
        os.unlink(deb)
    version = os.listdir(os.path.join(root, "lib", "modules"))[0]
    sh(["depmod", "-b", root, version])
    open(os.path.join(CACHE, ".ready"), "w").close()


def version():
    return os.listdir(os.path.join(kernel_root(), "lib", "modules"))[0]


def initramfs(path):
    """busybox, the early modules in load order, and init.sh as /init."""
    mods = os.path.join(kernel_root(), "lib", "modules", version())
    dep = {}
    with open(os.path.join(mods, "modules.dep")) as f:
        for line in f:
            name, _, rest = line.partition(":")
            dep[name] = rest.split()
    by_name = {os.path.basename(k)[:-3]: k for k in dep}
    order = []

    def need(rel):
        for d in dep[rel]:
            need(d)
        if rel not in order:
            order.append(rel)
    for m in EARLY_MODULES:
        need(by_name[m])
    work = path + ".d"
    shutil.rmtree(work, ignore_errors=True)
    for d in ("bin", "modules", "proc", "sys", "dev"):
        os.makedirs(os.path.join(work, d))
    shutil.copy(os.path.join(kernel_root(), "bin", "busybox"), os.path.join(work, "bin", "busybox"))
    for rel in order:
        shutil.copy(os.path.join(mods, rel), os.path.join(work, "modules"))
    with open(os.path.join(work, "modules", "order"), "w") as f:
        f.write("\n".join(os.path.basename(r) for r in order) + "\n")
    shutil.copy(os.path.join(HERE, "init.sh"), os.path.join(work, "init"))
    os.chmod(os.path.join(work, "init"), 0o755)
    files = subprocess.run("cd %s && find . | cpio -o -H newc --quiet | gzip -1" % work, shell=True,
                           check=True, capture_output=True).stdout
    with open(path, "wb") as f:
        f.write(files)
    shutil.rmtree(work)


class Bed:
    def __init__(self, workdir, deb=None, boot_timeout=240, kernel_args="", inner_accel="kvm"):
        """inner_accel: how the inner VMs run: "kvm" (nested in the TCG
        guest, as the benchmark measures) or "tcg" (the test suite: seen
        twice, the bed stopped answering for over a minute right after an
        inner QEMU started with nested KVM)."""
        self.dir = workdir
        self.inner_accel = inner_accel
        self.share = os.path.join(workdir, "share")       # /bed in the guest
        os.makedirs(os.path.join(self.share, "units"), exist_ok=True)
        for f in ("agent.py", "qmpq.py", "watch.py"):
            shutil.copy(os.path.join(HERE, f), self.share)
        for u in glob.glob(os.path.join(HERE, "units", "*")):
            shutil.copy(u, os.path.join(self.share, "units"))
        shutil.copytree(os.path.join(TOP, "tests", "lib"), os.path.join(self.share, "lib"),
                        dirs_exist_ok=True)
        if deb:
            shutil.copy(deb, os.path.join(self.share, "pkg.deb"))
        initrd = os.path.join(workdir, "initrd.gz")
        initramfs(initrd)
        self.agent_path = os.path.join(workdir, "agent.sock")
        self.qmp_path = os.path.join(workdir, "outer.qmp")
        self.console = os.path.join(workdir, "console.log")
        vmlinuz = glob.glob(os.path.join(kernel_root(), "boot", "vmlinuz-*"))[0]
        args = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,thread=multi,tb-size=256",
                "-cpu", "max", "-m", "1536", "-smp", "2", "-nodefaults", "-display", "none",
                "-no-reboot", "-kernel", vmlinuz, "-initrd", initrd,
                "-append", "console=ttyS0 panic=-1 quiet loglevel=4 systemd.unit=puh-bed.target systemd.show_status=0 " + kernel_args,
                "-serial", "file:" + self.console,
                "-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
                "-virtfs", "local,path=%s,mount_tag=kmod,security_model=none,readonly=on"
                % os.path.join(kernel_root(), "lib", "modules"),
                "-virtfs", "local,path=%s,mount_tag=bed,security_model=none,readonly=on" % self.share,
                "-device", "virtio-serial-pci",
                "-chardev", "socket,id=agent,path=%s,server=on,wait=off" % self.agent_path,
                "-device", "virtserialport,chardev=agent,name=puh.agent",
                "-device", "qemu-xhci,id=xhci,p2=8,p3=8",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(workdir, "outer.err"), "wb"))
        self.next_id = 0
        self.sock = None
        deadline = time.monotonic() + boot_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the outer QEMU ended:\n" + self.tail())
            if os.path.exists(self.agent_path):
                try:
                    self.connect()
                    r = self.run(["true"], timeout=5, wait=3)
                    if r["rc"] == 0:
                        break
                except (OSError, TimeoutError, ValueError):
                    self.sock = None
            time.sleep(0.5)
        else:
            self.stop()
            raise RuntimeError("the test bed did not come up in %d s:\n%s" % (boot_timeout, self.tail()))

    def tail(self):
        try:
            with open(self.console, errors="replace") as f:
                return "".join(f.readlines()[-30:])
        except OSError:
            return ""

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.agent_path)
        self.f = self.sock.makefile("rwb", buffering=0)

    def run(self, argv, timeout=60, wait=None, background=False, log=None, env=None):
        """Runs argv in the guest: {"rc", "out", "err"} (or {"pid"})."""
        self.next_id += 1
        req = {"id": self.next_id, "argv": argv, "timeout": timeout, "background": background,
               "env": env or {}}
        if log:
            req["log"] = log
        self.sock.settimeout(wait if wait is not None else timeout + 10)
        self.f.write((json.dumps(req) + "\n").encode())
        while True:
            line = self.f.readline()
            if not line:
                raise OSError("agent gone")
            res = json.loads(line)
            if res["id"] == self.next_id:
                return res

    def sh(self, script, timeout=60):
        return self.run(["sh", "-c", script], timeout=timeout)

    def qmp(self, execute, **args):
        return qmp_once(self.qmp_path, execute, **args)

    INNER = ("qemu-system-x86_64 -machine pc {accel} -m 64 -nodefaults -display none "
             "-device piix3-usb-uhci,id=uhci,bus=pci.0,addr=0x1.0x2 "
             "-device usb-tablet,id=tablet,bus=uhci.0,port=1 "
             "-device pci-bridge,id=pci.1,chassis_nr=1,bus=pci.0,addr=0x1e "
             "-device pci-bridge,id=pci.2,chassis_nr=2,bus=pci.0,addr=0x1f "
             "-device qemu-xhci,p2=15,p3=15,id=xhci,bus=pci.1,addr=0x1b "
             "-qmp unix:/var/run/qemu-server/{vmid}.qmp,server=on,wait=off "
             "-pidfile /var/run/qemu-server/{vmid}.pid "
             # when QEMU opens a host device, with the time (for bench.py)
             "-msg timestamp=on -trace enable=usb_host_open_success")

    def start_vm(self, vmid, rules, extra=""):
        """An inner VM laid out as Proxmox lays one out, running (QEMU's
        usb-host only looks for its device while the guest runs), with its
        rules (extra: more QEMU arguments); its post-start is the test's to
        call."""
        self.sh("mkdir -p /var/run/qemu-server /etc/pve/qemu-server && "
                "printf 'memory: 64\\nhookscript: local:snippets/pve-usb-hotplug\\n' >/etc/pve/qemu-server/%d.conf && "
                "printf '%%s' '%s' >/etc/pve/qemu-server/%d.usb.conf" % (vmid, rules, vmid))
        accel = "-accel kvm -accel tcg" if self.inner_accel == "kvm" else "-accel tcg"
        self.run((self.INNER.format(vmid=vmid, accel=accel) + " " + extra).split(), background=True,
                 log="/tmp/inner%d.log" % vmid)
        deadline = time.monotonic() + 30
        while self.sh("test -S /var/run/qemu-server/%d.qmp && test -s /var/run/qemu-server/%d.pid"
                      % (vmid, vmid))["rc"] != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("inner VM %d did not start: %s" % (vmid, self.sh("cat /tmp/inner%d.log" % vmid)))
            time.sleep(0.2)

    def stop_vm(self, vmid):
        # gone, as Proxmox waits for QEMU to end before post-stop
        self.sh("p=$(cat /var/run/qemu-server/%d.pid 2>/dev/null) && kill $p 2>/dev/null; "
                "for i in $(seq 100); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; "
                "rm -f /var/run/qemu-server/%d.* /etc/pve/qemu-server/%d.*" % (vmid, vmid, vmid))

    def held(self, vmid):
        """{id: {"hostport", "attached", "bus"}} from the inner QEMU itself."""
        r = self.run(["python3", "/bed/qmpq.py", str(vmid)])
        if r["rc"] != 0:
            raise RuntimeError(r["err"])
        return json.loads(r["out"])

    def wait_for(self, what, cond, timeout=20):
        """Polls what() until cond(value); returns the value (the last one on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            v = what()
            if cond(v) or time.monotonic() > deadline:
                return v
            time.sleep(0.2)

    def plug(self, dev_id, driver, port, **props):
        self.qmp("device_add", driver=driver, id=dev_id, bus="xhci.0", port=port, **props)

    def unplug(self, dev_id):
        self.qmp("device_del", id=dev_id)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
