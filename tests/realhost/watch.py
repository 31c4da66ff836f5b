#!/usr/bin/env python3
"""In the test bed: times each plug and unplug of a USB device. Per plug:
the kernel's add and udev's announcement (after RUN programs ran), as
udevadm monitor prints them (CLOCK_MONOTONIC), and the offset to
CLOCK_REALTIME, in which QEMU's trace says when it opened the device (QOM
"attached" turns true there). Per unplug: the kernel's remove and the
moment usbhost<port> is gone from the inner VM (asked over QMP every 10 ms).
One JSON line per event to stdout. watch.py VMID (-: no VM to watch
for unplugs, e.g. a libvirt domain, whose monitor is libvirtd's)"""
import json
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, "/bed/lib")
from pvesim import Qmp  # noqa: E402

VMID = sys.argv[1]
LINE = re.compile(r"^(KERNEL|UDEV)\s*\[(\d+\.\d+)\] (add|remove)\s+(\S+) \(usb\)")
out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        print(json.dumps(obj), flush=True)


def held_ids():
    q = Qmp("/var/run/qemu-server/%s.qmp" % VMID)
    try:
        return {i["name"] for i in q.cmd("qom-list", path="/machine/peripheral")}
    finally:
        q.close()


def watch_gone(name, t_kernel):
    dev_id = "usbhost" + name
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if dev_id not in held_ids():
                emit({"ev": "gone", "port": name, "kernel": t_kernel, "gone": time.monotonic()})
                return
        except Exception:        # noqa: BLE001 - the socket is busy: ask again
            pass
        time.sleep(0.01)
    emit({"ev": "gone-timeout", "port": name})


def main():
    mon = subprocess.Popen(["udevadm", "monitor", "--kernel", "--udev", "--subsystem-match=usb/usb_device"],
                           stdout=subprocess.PIPE, text=True, bufsize=1)
    emit({"ev": "ready"})
    for line in mon.stdout:
        m = LINE.match(line)
        if not m:
            continue
        src, t, action, path = m.group(1), float(m.group(2)), m.group(3), m.group(4)
        name = path.rsplit("/", 1)[-1]
        if not re.match(r"^\d+-[\d.]+$", name):
            continue
        if action == "add":
            emit({"ev": "add-" + src.lower(), "port": name, "t": t,
                  "offset": time.time() - time.monotonic()})
        elif action == "remove" and src == "KERNEL" and VMID != "-":
            threading.Thread(target=watch_gone, args=(name, t), daemon=True).start()


main()
