"""Starts the real `modelgate` binary for the client-compatibility tests."""

import os
import pathlib
import subprocess
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "mgt_compat_admin_token_0123456789abcdef"
SECRET_VALUE = "sk-compat-secret-value-5150"


class Server:
    def __init__(self, data_dir):
        binary = os.environ.get("MODELGATE_BIN", str(ROOT / "target" / "debug" / "modelgate"))
        env = dict(os.environ, MODELGATE_ADMIN_TOKEN=ADMIN_TOKEN)
        env.pop("MODELGATE_MASTER_KEY", None)
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
             "--deploy-delay", "300ms"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        self.output = []
        ready = threading.Event()
        self.host = None

        def pump():
            for line in self.proc.stdout:
                self.output.append(line)
                if line.startswith("modelgate listening on "):
                    self.host = line.split()[-1].strip()
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(30) or not self.host:
            raise RuntimeError("modelgate did not start:\n" + "".join(self.output))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        return self.proc.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("data"))
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
