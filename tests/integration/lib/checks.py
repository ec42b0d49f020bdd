"""Shared by the Python integration tests (this folder is not run as a test):
counted checks that print what failed, waiting for a condition, free ports."""
import os
import shutil
import socket
import subprocess
import sys
import time


class Checks:
    """check(cond, what) counts a check and prints `what` when it fails."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def __call__(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what)
        return bool(cond)

    def exit(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def wait_for(cond, timeout=30, step=0.1):
    """Polls `cond` until it holds or `timeout` seconds pass; returns its last value."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(procs, timeout=10):
    """SIGTERM to every process, then waits for each; one still running after
    `timeout` seconds is killed."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()


def finish(procs, check, tmp, log="junction.log", timeout=10):
    """The end of a test: stops the processes, prints the end of the engine's
    log `tmp`/`log` when a check failed, and removes `tmp` unless KEEP is set."""
    stop(procs, timeout)
    path = os.path.join(tmp, log)
    if check.failed and os.path.exists(path):
        print(open(path).read()[-3000:])
    if not os.environ.get("KEEP"):
        shutil.rmtree(tmp, ignore_errors=True)


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def engine_dir(prefix, channels, store="store: { path: var/junction.db, sync: normal }"):
    """A temporary folder holding a junction.yaml (its store line, and no admin
    port unless that line names one) and, in channels/, one file per entry of
    `channels` (name -> YAML text)."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.makedirs(f"{tmp}/channels")
    with open(f"{tmp}/junction.yaml", "w") as f:
        f.write(store + "\n")
        # No admin port unless asked for: tests run side by side, and the default
        # (8080) is the installed engine's in the package test.
        if "admin:" not in store:
            f.write("admin: { port: 0 }\n")
    for name, text in channels.items():
        with open(f"{tmp}/channels/{name}.yaml", "w") as f:
            f.write(text)
    return tmp


def start_engine(folder, password=None):
    """`junction run` on `folder`/junction.yaml, its output appended to
    `folder`/junction.log. The admin account's password at its first start:
    `password`, or none given (the engine makes one and prints it once)."""
    env = dict(os.environ)
    env.pop("JUNCTION_ADMIN_PASSWORD", None)
    if password:
        env["JUNCTION_ADMIN_PASSWORD"] = password
    log = open(f"{folder}/junction.log", "a")
    return subprocess.Popen([os.environ["JUNCTION_BIN"], "run", "--config", f"{folder}/junction.yaml"], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
