"""A scripted QMP peer, for the faults real QEMU does not make on demand:
dying mid-conversation, garbage, half a line, huge lines, events between a
command and its answer. It answers the few commands the program sends as a
one-controller guest would, unless the script says otherwise."""
import json
import os
import socket
import subprocess
import sys
import threading

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}


class FakeQmp:
    def __init__(self, qmp_dir, vmid, script):
        """script(conn, phase, request) -> bytes to send, or None to close;
        phase is "greeting" (request None) or the command's name."""
        self.path = os.path.join(qmp_dir, "%d.qmp" % vmid)
        self.pid_path = os.path.join(qmp_dir, "%d.pid" % vmid)
        # "running" as Proxmox tells it: the pid file names a live process
        # started with -pidfile naming that file
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)",
                                      "-pidfile", self.pid_path])
        with open(self.pid_path, "w") as f:
            f.write("%d\n" % self.proc.pid)
        self.script = script
        self.commands = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.stop_flag = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @staticmethod
    def line(obj):
        return (json.dumps(obj) + "\r\n").encode()

    @staticmethod
    def normal(phase, req):
        """What a guest with Proxmox's "xhci" and nothing on it answers."""
        if phase == "greeting":
            return FakeQmp.line(GREETING)
        rid = req.get("id")
        args = req.get("arguments", {})
        if phase == "qom-list" and args.get("path") == "/machine/peripheral":
            ret = [{"name": "xhci", "type": "child<qemu-xhci>"}]
        elif phase == "qom-list":
            ret = []
        elif phase == "qom-get":
            ret = 15
        else:
            ret = {}
        return FakeQmp.line({"return": ret, "id": rid})

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop_flag:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                self.talk(conn)

    def talk(self, conn):
        f = conn.makefile("rb")
        out = self.script(conn, "greeting", None)
        if out is None:
            return
        try:
            conn.sendall(out)
            while True:
                raw = f.readline()
                if not raw:
                    return
                req = json.loads(raw)
                self.commands.append(req["execute"])
                out = self.script(conn, req["execute"], req)
                if out is None:
                    return
                conn.sendall(out)
        except (BrokenPipeError, ConnectionResetError):
            return

    def close(self):
        self.stop_flag = True
        self.sock.close()
        self.thread.join(timeout=5)
        self.proc.kill()
        self.proc.wait()
        for p in (self.path, self.pid_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
