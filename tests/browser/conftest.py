"""The console in a real headless Chromium (Debian's package, driven by Playwright), against the
real binary, the mock upstream and a seeded workspace: two endpoints (one with two config versions
and some traffic), a secret, an admin and a user who may only query one endpoint."""

import os
import pathlib
import sys
import time

import pytest
import requests
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from harness import mock_upstream, start_server  # noqa: E402,F401  (mock_upstream: a shared fixture)

ADMIN_TOKEN = "mgt_browser_admin_token_0123456789abcdef"
SECRET_VALUE = "sk-browser-secret-value-8086"
USER_PASSWORD = "browser test password 42"
CHROMIUM = os.environ.get("MODELGATE_CHROMIUM", "/usr/bin/chromium")
# Screenshots go to docs/images/console when asked (to refresh the docs), else beside the test run.
SCREENSHOTS = os.environ.get("MODELGATE_SCREENSHOTS")


class Api:
    """The REST API as one principal."""

    def __init__(self, host, token):
        self.host, self.headers = host, {"Authorization": f"Bearer {token}"}

    def __call__(self, method, path, body=None, ok=True):
        r = requests.request(method, f"{self.host}{path}", json=body, headers=self.headers, timeout=30)
        if ok:
            assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text

    def settled(self, name):
        for _ in range(200):
            ep = self("GET", f"/api/2.0/serving-endpoints/{name}")
            if ep["state"]["config_update"] != "IN_PROGRESS":
                assert ep["state"]["ready"] == "READY", ep
                return ep
            time.sleep(0.05)
        raise AssertionError(f"{name} never settled")


def chat_entity(mock, model):
    return {"name": "primary", "external_model": {
        "provider": "openai", "name": model, "task": "llm/v1/chat",
        "openai_config": {"openai_api_key": "{{secrets/llm/openai}}", "openai_api_base": f"{mock.host}/v1"}}}


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, mock_upstream):
    """The running server, seeded; yields (host, admin Api, the user's token)."""
    s = start_server(tmp_path_factory.mktemp("data"), ADMIN_TOKEN, "--deploy-delay", "100ms",
                     "--console-password-sign-in")
    try:
        admin = Api(s.host, ADMIN_TOKEN)
        admin("POST", "/api/2.0/secrets/scopes/create", {"scope": "llm"})
        admin("POST", "/api/2.0/secrets/put", {"scope": "llm", "key": "openai", "string_value": SECRET_VALUE})
        admin("POST", "/api/2.0/serving-endpoints", {
            "name": "support-chat", "config": {"served_entities": [chat_entity(mock_upstream, "gpt-4o")]},
            "tags": [{"key": "team", "value": "support"}],
            "ai_gateway": {"rate_limits": [{"calls": 100, "renewal_period": "minute", "key": "user"}]}})
        admin.settled("support-chat")
        admin("PUT", "/api/2.0/serving-endpoints/support-chat/config",
              {"served_entities": [chat_entity(mock_upstream, "gpt-4o-mini")]})
        admin.settled("support-chat")
        admin("POST", "/api/2.0/serving-endpoints", {
            "name": "finance-chat", "config": {"served_entities": [chat_entity(mock_upstream, "gpt-4o")]},
            "tags": [{"key": "team", "value": "finance"}]})
        admin.settled("finance-chat")
        for i in range(12):
            admin("POST", "/serving-endpoints/support-chat/invocations",
                  {"messages": [{"role": "user", "content": f"question {i}"}], "stream": i % 2 == 0})
        admin("POST", "/api/2.0/preview/scim/v2/Users", {"userName": "dev@example.com", "password": USER_PASSWORD},
              ok=False)
        ep = admin("GET", "/api/2.0/serving-endpoints/support-chat")
        admin("PATCH", f"/api/2.0/permissions/serving-endpoints/{ep['id']}", {"access_control_list": [
            {"user_name": "dev@example.com", "permission_level": "CAN_QUERY"}]})
        user_token = admin("POST", "/api/2.0/token-management/on-behalf-of/tokens",
                           {"user_name": "dev@example.com", "comment": "browser tests"})["token_value"]
        yield s.host, admin, user_token
    finally:
        code = s.stop()
        log = "".join(s.output)
        for secret in (SECRET_VALUE, ADMIN_TOKEN, USER_PASSWORD):
            assert secret not in log, "the server log leaks a secret, a token or a password"
        assert code == 0, "server did not exit cleanly:\n" + log


@pytest.fixture(scope="session")
def chromium():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(chromium, workspace):
    """A fresh browser context (no cookies) at 1280 px; JavaScript errors fail the test."""
    context = chromium.new_context(base_url=workspace[0], viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    # A test that expects an error status clears what it expected from here.
    pg.console_errors = errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    """Where screenshots go."""
    return pathlib.Path(SCREENSHOTS) if SCREENSHOTS else tmp_path_factory.mktemp("screenshots")


def sign_in(page, token):
    page.goto("/")
    page.get_by_label("Personal access token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/")


__all__ = ["ADMIN_TOKEN", "SECRET_VALUE", "USER_PASSWORD", "sign_in"]
