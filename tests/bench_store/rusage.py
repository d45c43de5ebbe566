"""Runs a command and, once it has exited, writes what it cost over its whole life, from the
kernel's accounting of the child (wait4): used for deploy/local/bench-store.sh, whose contenders
do part of their work (the last Parquet files, the final commit) after SIGTERM, when /proc can no
longer be read.

    rusage.py OUT COMMAND [ARG...]

SIGTERM and SIGINT are passed on to the command; the command dies with this process
(PR_SET_PDEATHSIG). OUT gets one line, `cpu_s <user + system seconds> maxrss_kb <peak resident
set, as VmHWM>`. Exits with the command's status (128 + the signal if a signal ended it).
"""

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
FORWARDED = {signal.SIGTERM, signal.SIGINT}


def in_child():
    """Between fork and exec: the command dies with this process and gets every signal."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)


def main():
    out, command = sys.argv[1], sys.argv[2:]
    # Blocked until the child runs, so that a signal sent meanwhile reaches it, not this wrapper.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    child = subprocess.Popen(command, preexec_fn=in_child)
    for sig in FORWARDED:
        signal.signal(sig, lambda s, _frame: child.send_signal(s))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    _, status, usage = os.wait4(child.pid, 0)
    with open(out, "w") as f:
        f.write(f"cpu_s {usage.ru_utime + usage.ru_stime:.3f} maxrss_kb {usage.ru_maxrss}\n")
    code = os.waitstatus_to_exitcode(status)
    sys.exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
