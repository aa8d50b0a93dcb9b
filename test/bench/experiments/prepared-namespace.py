#!/usr/bin/env python3
"""Prepared namespaces and mounts (issue 13): how much of a sandbox's start is left for the
task when bubblewrap has set everything up ahead of it, and the workspace arrives later by
mount propagation. An experiment for a design decision (docs/PERFORMANCE.md, "Prepared
sandboxes"), not the product's sandbox: no seccomp, no Landlock, no cgroup, no sandbox-init.

  sudo python3 test/bench/experiments/prepared-namespace.py [ROUNDS]

Per round, alternately:
  bare      bwrap --unshare-all … --bind WS /workspace … /bin/echo hi, from spawn to exit.
  prepared  bwrap is started earlier with an empty per-member slot directory bound at
            /workspace (the slot lives on a tmpfs marked shared, so the sandbox's copy of it is
            a slave); a shell inside waits on a pipe. Timed: bind-mounting WS onto the slot on
            the host (it propagates into the sandbox), sending the command, the command's exit.
Needs root (mount) and bwrap.
"""
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
libc = ctypes.CDLL("libc.so.6", use_errno=True)
MS_BIND, MNT_DETACH = 4096, 2

root = tempfile.mkdtemp(prefix="prepared-ns-")
slots, ws = f"{root}/slots", f"{root}/ws"
os.makedirs(slots)
os.makedirs(ws)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "slots", slots], check=True)
subprocess.run(["mount", "--make-shared", slots], check=True)
BWRAP = ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
         "--cap-drop", "ALL", "--clearenv", "--ro-bind", "/usr", "/usr",
         "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
         "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
         "--tmpfs", "/tmp"]


def bare() -> float:
    t = time.perf_counter()
    out = subprocess.run(BWRAP + ["--bind", ws, "/workspace", "--chdir", "/workspace",
                                  "/bin/echo", "hi"], capture_output=True, check=True)
    assert out.stdout == b"hi\n", out
    return (time.perf_counter() - t) * 1000


def prepared(i: int) -> float:
    slot = f"{slots}/m{i}"
    os.makedirs(slot)
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    p = subprocess.Popen(
        BWRAP + ["--bind", slot, "/workspace", "--", "/bin/sh", "-c",
                 "read cmd <&3; cd /workspace && exec $cmd"],
        pass_fds=(go_r,), stdin=subprocess.DEVNULL, stdout=out_w, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.dup2(go_r, 3))
    os.close(out_w)
    time.sleep(0.05)  # the set-up happens before the task is known
    t = time.perf_counter()
    if libc.mount(ws.encode(), slot.encode(), None, MS_BIND, None) != 0:
        raise OSError(ctypes.get_errno(), "mount")
    os.write(go_w, b"/bin/echo hi\n")
    os.close(go_w)
    data = b""
    while chunk := os.read(out_r, 100):
        data += chunk
    p.wait()
    ms = (time.perf_counter() - t) * 1000
    assert data == b"hi\n", data
    libc.umount2(slot.encode(), MNT_DETACH)
    os.rmdir(slot)
    os.close(go_r)
    os.close(out_r)
    return ms


try:
    b, q = [], []
    for i in range(ROUNDS):
        b.append(bare())
        q.append(prepared(i))
    b.sort()
    q.sort()
    print(f"load average {os.getloadavg()[0]:.2f}, {ROUNDS} rounds")
    print(f"bare bwrap echo           p50 {statistics.median(b):5.2f} ms  min {b[0]:5.2f} ms")
    print(f"prepared: mount, go, exit p50 {statistics.median(q):5.2f} ms  min {q[0]:5.2f} ms")
finally:
    libc.umount2(slots.encode(), MNT_DETACH)
    shutil.rmtree(root, ignore_errors=True)
