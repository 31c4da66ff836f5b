#!/usr/bin/env python3
"""make demo: pve-usb-hotplug on a simulated Proxmox host.

Starts a real QEMU guest laid out as Proxmox lays out VM 100, fakes a host
with a hub tree on port 3-4 through umockdev, then runs the program as
Proxmox and udev would: the post-start hookscript, a plug, an unplug, a hub
unplugged with everything behind it. After each step it shows which USB
devices the guest has, as QEMU itself reports them.
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from pvesim import Guest, Host, Tool  # noqa: E402


def show(guest, title):
    print("\n  VM %d now has:" % guest.vmid)
    hosts = guest.usb_hosts(with_port=True)
    if not hosts:
        print("    (no passed-through host devices)")
    for name, h in sorted(hosts.items()):
        print("    %-18s host bus %-2s port %-8s on guest bus %s port %s"
              % (name, h["hostbus"], h["hostport"], h["bus"], h["port"]))
    print()


def step(title):
    print("=" * 72)
    print(title)
    print("=" * 72)


def run(tool, args=(), host=None, env=None):
    r = tool.run(args, host=host, env=env)
    for line in (r.stdout + r.stderr).splitlines():
        print("  | " + line)
    if r.returncode != 0:
        print("  (exit code %d)" % r.returncode)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="pve-usb-hotplug-demo-")
    tool = Tool(args.binary, work)
    host = Host(work)
    guest = Guest(100, tool.qmp_dir)
    try:
        tool.vm_conf(100, "memory: 2048\nhookscript: local:snippets/pve-usb-hotplug\n")
        conf = tool.usb_conf(100, "# the desk hub on the host's front port\n3-4\n"
                                  "# but never the backup stick on it\ndeny id 0781:*\n")
        host.hub("3-4")
        host.plug("3-4.1", 0x046D, 0xC31C, speed="1.5", product="USB Keyboard")
        host.hub("3-4.2")
        host.plug("3-4.2.1", 0x046D, 0xC077, speed="1.5", product="USB Optical Mouse")
        host.plug("3-4.2.3", 0x1395, 0x0025, speed="12", product="Headset")
        host.plug("3-4.3", 0x0781, 0x5581, product="Backup stick")
        host.plug("3-5", 0x0781, 0x5582, product="Host's own stick (not configured)")

        step("Host: hub on 3-4 with keyboard, a backup stick, a second hub with mouse\n"
             "and headset; a stick on 3-5. %s says: 3-4, deny id 0781:*" % conf)
        show(guest, "")

        step("Proxmox runs the hookscript: pve-usb-hotplug 100 post-start")
        run(tool, ["100", "post-start"], host=host)
        show(guest, "")

        step("A USB dongle is plugged into the second hub (port 3-4.2.4): udev 'add'")
        host.plug("3-4.2.4", 0x0BDA, 0x8179, product="Wi-Fi dongle")
        run(tool, host=host, env=host.event_env("add", "3-4.2.4"))
        show(guest, "")

        step("The keyboard is unplugged (3-4.1): udev 'remove'")
        kbd = host.devices["3-4.1"]
        host.unplug("3-4.1")
        run(tool, host=host, env=host.event_env("remove", "3-4.1", dev=kbd))
        show(guest, "")

        step("The second hub is pulled out with everything on it: one 'remove' per\n"
             "device, deepest first, then the hub's own (ignored: hubs are never passed)")
        removed = {p: host.devices[p] for p in host.devices if p.startswith("3-4.2")}
        host.unplug("3-4.2")
        for p in sorted(removed, key=lambda x: -x.count(".")):
            run(tool, host=host, env=host.event_env("remove", p, dev=removed[p]))
        show(guest, "")

        step("Something is plugged into 3-5, which no VM claims: nothing happens")
        host.plug("3-5", 0x0781, 0x5582)
        run(tool, host=host, env=host.event_env("add", "3-5"))
        show(guest, "")
        step("The operator asks: pve-usb-hotplug status")
        run(tool, ["status"], host=host)
        print("Demo done: the guest followed every plug and unplug under port 3-4.")
    finally:
        guest.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
