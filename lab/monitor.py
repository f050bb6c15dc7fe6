"""Send human-monitor (HMP) commands to a QEMU monitor unix socket and print the replies.

usage: monitor.py SOCKET COMMAND [COMMAND...]   e.g. monitor.py mon.sock "savevm lab" quit
Waits for the "(qemu) " prompt after each command, so slow commands (savevm) finish first.
"""
import re
import socket
import sys
import time

PROMPT = b"(qemu) "
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def read_prompt(sock, timeout):
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(PROMPT):
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise SystemExit("monitor: timed out waiting for the QEMU prompt")
        if not chunk:
            return buf, False
        buf += chunk
    return buf, True


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(argv[1])
    read_prompt(sock, 30)
    for cmd in argv[2:]:
        sock.sendall(cmd.encode() + b"\n")
        out, alive = read_prompt(sock, 900)
        # HMP echoes the command with terminal escapes (line editing); drop them and the echo.
        text = ANSI.sub("", out.decode(errors="replace")).replace("\r", "")
        lines = text.split("\n")
        if lines and lines[0].strip().endswith(cmd):
            lines = lines[1:]
        lines = [ln for ln in lines if not ln.startswith("(qemu)")]
        reply = "\n".join(lines).strip()
        if reply:
            print(reply)
        if not alive:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
