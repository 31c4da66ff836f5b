#!/usr/bin/env python3
"""The test bed's agent: runs what the host asks, over a virtio serial port.

One JSON object a line each way: {"id", "argv", "timeout", "background"} in,
{"id", "rc", "out", "err"} (or {"id", "pid"}) out."""
import json
import os
import subprocess
import time

PORT = "/dev/virtio-ports/puh.agent"


def main():
    deadline = time.monotonic() + 120
    while not os.path.exists(PORT):      # virtio_console comes with udev's coldplug
        if time.monotonic() > deadline:
            raise SystemExit("no %s" % PORT)
        time.sleep(0.05)
    fd = os.open(PORT, os.O_RDWR)
    f = os.fdopen(fd, "r+b", buffering=0)
    buf = b""
    while True:
        chunk = f.read(65536)
        if not chunk:
            time.sleep(0.01)
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            req = json.loads(line)
            try:
                if req.get("background"):
                    p = subprocess.Popen(req["argv"], stdin=subprocess.DEVNULL,
                                         stdout=open(req.get("log", "/dev/null"), "ab"),
                                         stderr=subprocess.STDOUT, start_new_session=True)
                    res = {"id": req["id"], "pid": p.pid}
                else:
                    r = subprocess.run(req["argv"], capture_output=True, timeout=req.get("timeout", 60),
                                       env=dict(os.environ, **req.get("env", {})))
                    res = {"id": req["id"], "rc": r.returncode,
                           "out": r.stdout.decode(errors="replace"), "err": r.stderr.decode(errors="replace")}
            except Exception as e:      # noqa: BLE001 - everything goes back to the host
                res = {"id": req["id"], "rc": -1, "out": "", "err": "agent: %r" % e}
            f.write((json.dumps(res) + "\n").encode())


main()
