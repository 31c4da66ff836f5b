#!/usr/bin/env python3
"""make bench-realhost: plug-to-open and unplug-to-gone in the real-host
test bed, over N plugs of a device (a keyboard by default) behind a hub: from the kernel's add and
from udev's announcement of the device to QEMU having it open, and from the
kernel's remove to the usb-host being gone from the VM. Median and max."""
import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bed as bedmod  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import libvirtsim  # noqa: E402


LV_ROOT = "/tmp/lv"
LV_URI = "qemu:///system?socket=%s/run/libvirt-sock" % LV_ROOT


def libvirt_domain(b):
    """A libvirtd in the bed (libvirtsim's way), a domain "lab" whose QEMU
    traces its opens into libvirt's log of it, declared with rules 1-1.
    The path of that log."""
    b.run(["unshare", "-m", "--propagation", "private", "sh", "-c", libvirtsim.SCRIPT, "sh", LV_ROOT],
          background=True, log="/tmp/libvirtd.log")
    assert b.wait_for(lambda: b.run(["virsh", "-c", LV_URI, "version"], timeout=120)["rc"],
                      lambda rc: rc == 0, 120) == 0, b.sh("tail /tmp/libvirtd.log")
    xml = libvirtsim.DOMAIN.format(name="lab", qemu="/usr/bin/qemu-system-x86_64", devices=libvirtsim.XHCI)
    xml = xml.replace("<domain type='qemu'>",
                      "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>")
    xml = xml.replace("</domain>", "  <qemu:commandline><qemu:arg value='-trace'/>"
                      "<qemu:arg value='enable=usb_host_open_success'/></qemu:commandline>\n</domain>")
    with open(os.path.join(b.share, "lab.xml"), "w") as f:
        f.write(xml)
    for args in (("define", "/bed/lab.xml"), ("start", "lab")):
        r = b.run(["virsh", "-c", LV_URI] + list(args), timeout=120)
        assert r["rc"] == 0, r
    b.sh("mkdir -p /etc/pve-usb-hotplug.conf.d && printf '[libvirt lab]\\nuri = %s\\n' "
         ">/etc/pve-usb-hotplug.conf.d/guests.conf && echo 1-1 >/etc/pve-usb-hotplug.conf.d/lab.usb.conf" % LV_URI)
    return "%s/log/qemu/lab.log" % LV_ROOT


def libvirt_gone(b):
    """port ("1.3") -> whether the domain has its hostdev no more."""
    def gone(port):
        r = b.run(["virsh", "-c", LV_URI, "dumpxml", "lab"], timeout=60)
        return r["rc"] == 0 and "ua-usbhost1-%s'" % port.replace(".", "_") not in r["out"]
    return gone


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deb", required=True)
    ap.add_argument("--plugs", type=int, default=20)
    ap.add_argument("--device", default="usb-kbd",
                    help="the QEMU USB device plugged into the outer guest")
    ap.add_argument("--kernel-args", default="",
                    help="added to the test bed kernel's command line")
    ap.add_argument("--no-listener", dest="listener", action="store_false",
                    help="plugs followed by the udev rule's systemd unit alone")
    ap.add_argument("--no-hold", dest="hold", action="store_false",
                    help="the listener holds no ports ([listen] hold_ports = no)")
    ap.add_argument("--libvirt", action="store_true",
                    help="the guest is a libvirt domain of a libvirtd started in the bed")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    bedmod.prepare()
    b = bedmod.Bed(tempfile.mkdtemp(prefix="puh-bench-"), deb=os.path.abspath(a.deb),
                   kernel_args=a.kernel_args)
    try:
        r = b.sh("dpkg -i /bed/pkg.deb >/tmp/dpkg.log 2>&1 && udevadm control --reload && "
                 + ("" if a.hold else "mkdir -p /etc/pve-usb-hotplug.conf.d && "
                    "printf '[listen]\\nhold_ports = no\\n' >/etc/pve-usb-hotplug.conf.d/nohold.conf && ")
                 + ("systemctl restart pve-usb-hotplug.service" if a.listener else "systemctl stop pve-usb-hotplug.service"))
        assert r["rc"] == 0, r
        if a.listener:
            b.wait_for(lambda: b.sh("test -e /run/pve-usb-hotplug/listening")["rc"], lambda rc: rc == 0, 20)
        b.plug("hub", "usb-hub", "1")
        if a.libvirt:
            trace_log, gone = libvirt_domain(b), libvirt_gone(b)
        else:
            b.start_vm(100, "1-1\n")
            b.run(["pve-usb-hotplug", "100", "post-start"])
            trace_log, gone = "/tmp/inner100.log", None
        if a.listener and a.hold and not a.libvirt:
            held = b.wait_for(lambda: b.sh("journalctl -u pve-usb-hotplug.service")["out"],
                              lambda o: "holding port 1-1 (VM 100)" in o, 20)
            assert "holding port 1-1 (VM 100)" in held, held
        b.sh("udevadm settle")
        b.run(["sh", "-c", "python3 /bed/watch.py %s >/tmp/watch.jsonl 2>/tmp/watch.err" % ("-" if a.libvirt else "100")],
              background=True)
        b.wait_for(lambda: b.sh("cat /tmp/watch.jsonl")["out"], lambda o: "ready" in o, 20)
        def opens():
            return int(b.sh("grep -c usb_host_open_success %s" % trace_log)["out"] or 0)
        for i in range(a.plugs):
            port = "1.%d" % (i % 7 + 1)
            n_open = opens()
            b.plug("k", a.device, port)
            b.wait_for(opens, lambda n: n > n_open, 15)      # QEMU has it open
            time.sleep(0.2)
            if a.verbose:
                print(b.sh("systemctl show pve-usb-hotplug@1-%s.service -p ExecMainStartTimestampMonotonic "
                           "-p ExecMainExitTimestampMonotonic -p InactiveExitTimestampMonotonic; tail -1 /tmp/watch.jsonl" % port)["out"])
            n_before = len(b.sh("cat /tmp/watch.jsonl")["out"].splitlines())
            b.unplug("k")
            if gone:
                b.wait_for(lambda: gone(port), bool, 15)
            else:
                b.wait_for(lambda: b.sh("cat /tmp/watch.jsonl")["out"].splitlines(),
                           lambda ls: len(ls) > n_before, 15)
            time.sleep(0.3)
        events = [json.loads(l) for l in b.sh("cat /tmp/watch.jsonl")["out"].splitlines()]
        trace = b.sh("cat %s" % trace_log)["out"]
    finally:
        b.stop()
    # QEMU's trace names the device by bus:address; plugs come one at a
    # time, so the first open after a plug's add is that plug's
    opened = [float(t) for t in re.findall(r"@(\d+\.\d+):usb_host_open_success", trace)]
    plugs, fails = [], [e for e in events if e["ev"].endswith("timeout")]
    for e in events:
        if e["ev"] != "add-kernel":
            continue
        udev = [u for u in events if u["ev"] == "add-udev" and u["port"] == e["port"] and u["t"] >= e["t"]]
        real = e["t"] + e["offset"]
        opens = [t for t in opened if t >= real]
        if not udev or not opens:
            fails.append(e)
            continue
        plugs.append((opens[0] - real, opens[0] - (udev[0]["t"] + e["offset"])))
    gones = [e for e in events if e["ev"] == "gone"]

    def row(name, values):
        ms = [v * 1000 for v in values]
        print("| %s | %d | %.0f ms | %.0f ms |" % (name, len(ms), statistics.median(ms), max(ms)))
    print("| %s%s, %s%s, measured in the real-host test bed (TCG) | plugs | median | max |"
          % (a.device, " into a libvirt domain" if a.libvirt else "",
             ("listener" + ("" if a.hold else ", no port held")) if a.listener else "udev rule's unit only",
             ", kernel " + a.kernel_args if a.kernel_args else ""))
    print("|---|---:|---:|---:|")
    row("udev announces the device -> QEMU has it open", [u for k, u in plugs])
    row("kernel's add -> QEMU has it open", [k for k, u in plugs])
    if gones:   # not for a libvirt domain: asking libvirt is too slow to time it
        row("kernel's remove -> usb-host gone from the VM", [g["gone"] - g["kernel"] for g in gones])
    if fails:
        print("timeouts:", fails)
    sys.exit(1 if fails or len(plugs) < a.plugs else 0)


main()
