"""The legacy `databricks-cli` (0.18), which older CI workflows install, for secrets, tokens and
groups against the running binary."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import ADMIN_TOKEN

CLI = str(pathlib.Path(sys.executable).parent / "databricks")


@pytest.fixture(scope="module")
def legacy(server, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    # The legacy CLI drops the port of DATABRICKS_HOST (it only ever talked to :443), so it is
    # pointed at the server as its HTTP proxy, with a port-less host name.
    env = dict(os.environ, HOME=str(home), DATABRICKS_HOST="http://modelgate.test", DATABRICKS_TOKEN=ADMIN_TOKEN,
               HTTP_PROXY=server.host, http_proxy=server.host, NO_PROXY="", no_proxy="")
    env.pop("DATABRICKS_CONFIG_PROFILE", None)

    def run(*args, check=True):
        p = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60)
        if check:
            assert p.returncode == 0, f"databricks {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
        return p

    return run


def test_groups(legacy):
    legacy("groups", "create", "--group-name", "legacy-team")
    assert "legacy-team" in json.loads(legacy("groups", "list").stdout)["group_names"]
    legacy("groups", "add-member", "--parent-name", "legacy-team", "--user-name", "admin")
    members = json.loads(legacy("groups", "list-members", "--group-name", "legacy-team").stdout)["members"]
    assert {"user_name": "admin"} in members
    parents = json.loads(legacy("groups", "list-parents", "--user-name", "admin").stdout)["group_names"]
    assert "legacy-team" in parents and "admins" in parents
    legacy("groups", "remove-member", "--parent-name", "legacy-team", "--user-name", "admin")
    assert json.loads(legacy("groups", "list-members", "--group-name", "legacy-team").stdout)["members"] == []
    legacy("groups", "delete", "--group-name", "legacy-team")
    assert "legacy-team" not in json.loads(legacy("groups", "list").stdout)["group_names"]


def test_secrets_and_tokens(legacy):
    legacy("secrets", "create-scope", "--scope", "legacy")
    legacy("secrets", "put", "--scope", "legacy", "--key", "k", "--string-value", "legacy-value")
    listed = legacy("secrets", "list", "--scope", "legacy", "--output", "JSON").stdout
    assert [s["key"] for s in json.loads(listed)["secrets"]] == ["k"]
    scopes = legacy("secrets", "list-scopes", "--output", "JSON").stdout
    assert "legacy" in [s["name"] for s in json.loads(scopes)["scopes"]]
    legacy("secrets", "delete", "--scope", "legacy", "--key", "k")

    created = json.loads(legacy("tokens", "create", "--comment", "legacy ci", "--lifetime-seconds", "3600").stdout)
    assert created["token_value"].startswith("mgt_")
    tokens = json.loads(legacy("tokens", "list").stdout)["token_infos"]
    assert "legacy ci" in [t.get("comment") for t in tokens]
    legacy("tokens", "revoke", "--token-id", created["token_info"]["token_id"])
