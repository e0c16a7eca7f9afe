"""What the Python test suites share: the built binaries and a child process that is stopped
whatever happens to the test that started it."""

import os
import pathlib
import subprocess
import threading

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN_DIR = pathlib.Path(os.environ.get("MODELGATE_BIN_DIR", str(ROOT / "target" / "debug")))


class Process:
    """A child process that prints `... listening on <url>` once it is ready."""

    def __init__(self, args, env=None):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.output = []
        ready = threading.Event()
        self.host = None

        def pump():
            for line in self.proc.stdout:
                self.output.append(line)
                if " listening on " in line and self.host is None:
                    self.host = line.split()[-1].strip()
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(30) or not self.host:
            self.proc.kill()
            raise RuntimeError(f"{args[0]} did not start:\n" + "".join(self.output))

    def stop(self):
        """Stops the process (killing it if it does not stop in time); returns its exit code."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode
