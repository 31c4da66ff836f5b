#!/usr/bin/env python3
"""In the test bed: asks an inner VM over QMP. qmpq.py VMID|SOCKET -> JSON
{id: {"hostport", "attached", "bus"}} of its usb-host devices;
qmpq.py VMID|SOCKET disks -> {"devices": {id: driver}, "nodes": {name: file}}
of its usbdisk-* devices and block nodes."""
import json
import sys

sys.path.insert(0, "/bed/lib")
from pvesim import Qmp  # noqa: E402

arg = sys.argv[1]
q = Qmp(arg if arg.startswith("/") else "/var/run/qemu-server/%s.qmp" % arg)
if sys.argv[2:] == ["disks"]:
    devices = {i["name"]: i["type"][6:-1] for i in q.cmd("qom-list", path="/machine/peripheral")
               if i["name"].startswith("usbdisk-")}
    nodes = {n["node-name"]: n["file"] for n in q.cmd("query-named-block-nodes", flat=True)
             if n["node-name"].startswith("usbdisk-")}
    q.close()
    print(json.dumps({"devices": devices, "nodes": nodes}))
    sys.exit(0)
out = {}
for item in q.cmd("qom-list", path="/machine/peripheral"):
    if item["type"] != "child<usb-host>":
        continue
    p = "/machine/peripheral/" + item["name"]
    out[item["name"]] = {"hostport": q.cmd("qom-get", path=p, property="hostport"),
                         "attached": q.cmd("qom-get", path=p, property="attached"),
                         "bus": q.cmd("qom-get", path=p, property="parent_bus").rsplit("/", 1)[-1]}
q.close()
print(json.dumps(out))
