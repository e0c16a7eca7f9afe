"""Starts the real `modelgate` binary for the client-compatibility tests."""

import os
import pathlib
import subprocess
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "mgt_compat_admin_token_0123456789abcdef"
SECRET_VALUE = "sk-compat-secret-value-5150"


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
            raise RuntimeError(f"{args[0]} did not start:\n" + "".join(self.output))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        return self.proc.returncode


@pytest.fixture(scope="session")
def mock_upstream():
    p = Process([str(BIN_DIR / "modelgate-mock-upstream"), "--listen", "127.0.0.1:0"])
    yield p
    p.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory, mock_upstream):
    env = dict(os.environ, MODELGATE_ADMIN_TOKEN=ADMIN_TOKEN)
    env.pop("MODELGATE_MASTER_KEY", None)
    s = Process(
        [str(BIN_DIR / "modelgate"), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path_factory.mktemp("data")),
         "--deploy-delay", "300ms", "--provider-base-url", f"anthropic={mock_upstream.host}",
         "--upstream-idle-timeout", "2s"],
        env=env,
    )
    yield s
    code = s.stop()
    assert code == 0, "server did not exit cleanly:\n" + "".join(s.output)
    assert SECRET_VALUE not in "".join(s.output), "the server log leaks a secret"


@pytest.fixture(scope="session")
def databricks_env(server):
    """DATABRICKS_HOST/TOKEN for clients that read the environment (mlflow)."""
    old = {k: os.environ.get(k) for k in ("DATABRICKS_HOST", "DATABRICKS_TOKEN")}
    os.environ["DATABRICKS_HOST"] = server.host
    os.environ["DATABRICKS_TOKEN"] = ADMIN_TOKEN
    yield server
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
