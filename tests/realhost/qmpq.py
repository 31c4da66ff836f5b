#!/usr/bin/env python3
"""In the test bed: asks an inner VM over QMP. qmpq.py VMID held -> JSON
{id: {"hostport", "attached"}} of its usb-host devices."""
import json
import sys

sys.path.insert(0, "/bed/lib")
from pvesim import Qmp  # noqa: E402

q = Qmp("/var/run/qemu-server/%s.qmp" % sys.argv[1])
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
