"""What the Python test suites share: the built binaries and a child process that is stopped
whatever happens to the test that started it."""

import atexit
import itertools
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


# With MODELGATE_TEST_STORE=postgres, servers keep their state in a fresh PostgreSQL database per
# data directory (a restart on the directory finds its database again), dropped when the session
# ends.
POSTGRES_SERVER = os.environ.get("MODELGATE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
_databases = {}
_next_database = itertools.count()


def _psql(sql):
    subprocess.run(["psql", "-X", "-q", POSTGRES_SERVER, "-c", sql], check=True, capture_output=True)


def _database_for(data_dir):
    key = str(pathlib.Path(data_dir).resolve())
    if key not in _databases:
        name = f"mgpy_{os.getpid()}_{next(_next_database)}"
        _psql(f"CREATE DATABASE {name}")
        _databases[key] = name
    return POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + _databases[key]


@atexit.register
def _drop_databases():
    for name in _databases.values():
        try:
            _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except (subprocess.CalledProcessError, OSError):
            pass


def start_server(data_dir, admin_token, *flags, bin_dir=None, env=None):
    """`modelgate serve` on a free loopback port with `admin_token` as the admin's token, its
    state in `data_dir` (or its PostgreSQL database) and its master key in a file there."""
    env = dict(env if env is not None else os.environ, MODELGATE_ADMIN_TOKEN=admin_token)
    env.pop("MODELGATE_MASTER_KEY", None)
    if os.environ.get("MODELGATE_TEST_STORE") == "postgres":
        env["MODELGATE_DATABASE_URL"] = _database_for(data_dir)
    binary = pathlib.Path(bin_dir or BIN_DIR) / "modelgate"
    return Process([str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *flags], env=env)
