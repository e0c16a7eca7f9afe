"""What the Python test suites share: the built binaries and a child process that is stopped
whatever happens to the test that started it."""

import os
import pathlib
import subprocess
import threading

import pytest

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


def start_mock_upstream(bin_dir=None):
    """The mock upstream (every provider's wire format) on a free loopback port."""
    return Process([str(pathlib.Path(bin_dir or BIN_DIR) / "modelgate-mock-upstream"), "--listen", "127.0.0.1:0"])


@pytest.fixture(scope="session")
def mock_upstream():
    """The mock upstream for a whole test session (a conftest imports this fixture)."""
    p = start_mock_upstream()
    yield p
    p.stop()


def start_server(data_dir, admin_token, *flags, bin_dir=None, env=None):
    """`modelgate serve` on a free loopback port with `admin_token` as the admin's token, its
    state in `data_dir` and its master key in a file there."""
    env = dict(env if env is not None else os.environ, MODELGATE_ADMIN_TOKEN=admin_token)
    env.pop("MODELGATE_MASTER_KEY", None)
    binary = pathlib.Path(bin_dir or BIN_DIR) / "modelgate"
    return Process([str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *flags], env=env)
