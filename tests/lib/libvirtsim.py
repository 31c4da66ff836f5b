"""A libvirtd of a test's own: the real daemon (Debian's
libvirt-daemon-system), as root, in a private mount namespace where
/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
/var/log/libvirt are directories of the test, so the host's own libvirt is
never touched. Its QEMUs run as root, without cgroups, namespaces, a
security driver or virtlogd (none of which a test machine may have)."""
import os
import shutil
import subprocess
import time

# $1: the test's directory. Refuses to run without one: the binds must
# never land on the host's own directories.
SCRIPT = r"""
set -eu
T="$1"
case "$T" in /*/*) ;; *) echo "libvirtsim: no test directory" >&2; exit 2 ;; esac
for d in etc run lib cache log; do mkdir -p "$T/$d"; done
cp -a /etc/libvirt/. "$T/etc/"
printf '%s\n' 'user = "root"' 'group = "root"' 'dynamic_ownership = 0' \
    'security_driver = "none"' 'cgroup_controllers = [ ]' 'namespaces = [ ]' \
    'stdio_handler = "file"' > "$T/etc/qemu.conf"
for pair in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt \
            cache:/var/cache/libvirt log:/var/log/libvirt; do
    mkdir -p "${pair#*:}"
    mount --bind "$T/${pair%%:*}" "${pair#*:}"
done
exec libvirtd --pid-file /run/libvirt/test-libvirtd.pid
"""

DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>{qemu}</emulator>
    {devices}
    <memballoon model='none'/>
  </devices>
</domain>
"""

XHCI = "<controller type='usb' index='0' model='qemu-xhci' ports='8'/>"


def available():
    """libvirtd and virsh installed, and root to run them."""
    return bool(shutil.which("libvirtd") and shutil.which("virsh")) and os.geteuid() == 0


class Libvirtd:
    def __init__(self, workdir):
        self.root = os.path.join(os.path.abspath(workdir), "libvirt")
        os.makedirs(self.root)
        self.sock = os.path.join(self.root, "run", "libvirt-sock")
        self.uri = "qemu:///system?socket=" + self.sock
        self.log = open(os.path.join(workdir, "libvirtd.log"), "wb")
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT,
                                      "sh", self.root], stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.domains = []
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock) or self.virsh("version").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("libvirtd did not start: see %s" % self.log.name)
            time.sleep(0.1)

    def virsh(self, *args, timeout=60):
        return subprocess.run(["virsh", "-c", self.uri] + list(args), capture_output=True, text=True,
                              timeout=timeout)

    def start(self, name, devices=XHCI, qemu="/usr/bin/qemu-system-x86_64"):
        """Defines and starts a TCG domain without a disk (it sits in its firmware)."""
        path = os.path.join(self.root, name + ".xml")
        with open(path, "w") as f:
            f.write(DOMAIN.format(name=name, qemu=qemu, devices=devices))
        for args in (("define", path), ("start", name)):
            r = self.virsh(*args)
            if r.returncode != 0:
                raise RuntimeError("virsh %s: %s" % (" ".join(args), r.stderr))
        self.domains.append(name)

    def live_xml(self, name):
        r = self.virsh("dumpxml", name)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return r.stdout

    def stop(self):
        """Destroys the domains, then stops libvirtd (its QEMUs would
        outlive it). Again: nothing more."""
        for name in self.domains:
            self.virsh("destroy", name)
        self.domains = []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
