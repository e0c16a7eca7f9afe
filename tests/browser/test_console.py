"""The console as a user sees it: sign in, the endpoint list, an endpoint with charts, a rollback,
a streamed playground query, what a non-admin is denied, and no secret or token in any page."""

import http.server
import re
import threading

import pytest
from playwright.sync_api import expect

from conftest import ADMIN_TOKEN, SECRET_VALUE, USER_PASSWORD, sign_in


def test_sign_in_is_required_and_a_bad_token_is_told(page):
    page.goto("/console/usage")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    page.get_by_label("Personal access token").fill("mgt_not_a_real_token")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("That token is not valid (or has expired).")
    assert page.console_errors == ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
    page.console_errors.clear()


def test_endpoint_list_sorts_filters_and_opens_an_endpoint_with_charts(page, shots):
    sign_in(page, ADMIN_TOKEN)
    rows = page.locator("#endpoints tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("finance-chat")
    page.screenshot(path=shots / "endpoints.png", full_page=True)

    # Sorting by name, descending, from the column heading.
    page.get_by_role("link", name=re.compile("^Name")).click()
    expect(rows.nth(0)).to_contain_text("support-chat")
    # The filter box hides rows as one types; the tag filter asks the server.
    page.get_by_placeholder("Filter by name, model, owner, tag…").fill("finance")
    expect(page.locator("#endpoints tbody tr:visible")).to_have_count(1)
    page.get_by_label("Tag").select_option("team=support")
    expect(page).to_have_url(re.compile(r"tag=team%3Dsupport"))
    expect(rows).to_have_count(1)

    rows.first.get_by_role("link", name="support-chat").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("support-chat")
    expect(page.get_by_text("12 queries,")).to_be_visible()
    # The queries chart has a line with data in its last minutes: not a flat line on the axis.
    line = page.locator("figure.chart", has_text="Queries per minute").locator("path").first
    points = [float(y) for y in re.findall(r"[ML][\d.]+,([\d.]+)", line.get_attribute("d"))]
    assert min(points) < max(points), points
    expect(page.locator("figure.chart", has_text="Time to first token").locator("path").first).to_have_attribute("d", re.compile("M"))
    expect(page.get_by_role("cell", name="minute")).to_be_visible()  # the rate limit
    page.screenshot(path=shots / "endpoint.png", full_page=True)


def test_a_manager_rolls_back_a_config_version(page, workspace):
    host, admin, _ = workspace
    sign_in(page, ADMIN_TOKEN)
    page.goto("/console/endpoints/support-chat")
    expect(page.get_by_role("cell", name="openai / gpt-4o-mini")).to_be_visible()
    page.get_by_role("link", name="Side by side").click()
    expect(page.locator("table.side-by-side tr.changed").first).to_contain_text("gpt-4o")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Roll back to this").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("support-chat")
    ep = admin.settled("support-chat")
    assert ep["config"]["config_version"] == 3
    assert ep["config"]["served_entities"][0]["external_model"]["name"] == "gpt-4o"
    page.reload()
    expect(page.get_by_role("cell", name="openai / gpt-4o", exact=True)).to_be_visible()
    # Declining the confirmation does nothing.
    page.once("dialog", lambda d: d.dismiss())
    page.get_by_role("button", name="Roll back to this").first.click()
    assert admin.settled("support-chat")["config"]["config_version"] == 3


def test_the_playground_streams_an_answer_and_shows_the_same_request(page, shots):
    sign_in(page, ADMIN_TOKEN)
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Endpoint").select_option("support-chat")
    page.get_by_label("Message").fill("hello from the browser")
    expect(page.locator("#code-curl")).to_contain_text("/serving-endpoints/support-chat/invocations")
    expect(page.locator("#code-openai")).to_contain_text('model="support-chat"')
    expect(page.locator("#code-sdk")).to_contain_text("serving_endpoints.query")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").first.click()
    assert page.evaluate("navigator.clipboard.readText()").startswith("curl -N ")
    page.get_by_role("button", name="Send (streamed)").click()
    expect(page.locator("#answer")).to_have_text("echo: hello from the browser")
    page.screenshot(path=shots / "playground.png", full_page=True)


def test_usage_operations_and_identity_pages(page, shots):
    sign_in(page, ADMIN_TOKEN)
    page.get_by_role("link", name="Cost and usage").click()
    expect(page.get_by_role("cell", name="support-chat")).to_be_visible()
    expect(page.locator("figure.chart")).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == "usage.csv"
    page.screenshot(path=shots / "usage.png", full_page=True)

    page.get_by_role("link", name="Operations").click()
    page.get_by_placeholder("who").fill("admin")
    page.get_by_label("Action").select_option("PUT")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table").last).to_contain_text("PUT")
    expect(page.get_by_text("openai", exact=True)).to_be_visible()  # the key's name, never its value
    page.screenshot(path=shots / "operations.png", full_page=True)

    page.get_by_role("link", name="Identity").click()
    expect(page.get_by_role("cell", name="dev@example.com", exact=True).first).to_be_visible()
    page.screenshot(path=shots / "identity.png", full_page=True)


def test_a_user_sees_only_what_they_may(page, workspace):
    _, _, user_token = workspace
    sign_in(page, user_token)
    rows = page.locator("#endpoints tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("support-chat")
    expect(page.get_by_role("link", name="Identity")).to_have_count(0)

    page.goto("/console/endpoints/support-chat")
    expect(page.get_by_text("your permission: CAN_QUERY")).to_be_visible()
    expect(page.get_by_role("button", name="Roll back to this")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete endpoint")).to_have_count(0)

    r = page.goto("/console/endpoints/finance-chat")
    assert r.status in (403, 404)
    expect(page.get_by_role("alert")).to_be_visible()
    r = page.goto("/console/identity")
    assert r.status == 403
    expect(page.get_by_role("alert")).to_contain_text("Only admins may")

    page.goto("/console/playground")
    expect(page.get_by_label("Endpoint").locator("option")).to_have_count(1)
    assert len(page.console_errors) == 2, page.console_errors  # the two refusals above
    page.console_errors.clear()


def test_a_user_signs_in_with_a_password_and_out(page, shots):
    page.goto("/")
    page.screenshot(path=shots / "sign-in.png")
    page.get_by_label("User name").fill("dev@example.com")
    page.get_by_label("Password", exact=True).fill(USER_PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    expect(page.locator("header")).to_contain_text("dev@example.com")
    expect(page.locator("#endpoints tbody tr")).to_have_count(1)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))


def test_no_secret_or_token_in_any_page(page, workspace):
    _, _, user_token = workspace
    sign_in(page, ADMIN_TOKEN)
    for path in ["/", "/console/endpoints/support-chat", "/console/endpoints/finance-chat", "/console/playground",
                 "/console/usage", "/console/operations", "/console/identity"]:
        page.goto(path)
        html = page.content()
        for secret in (SECRET_VALUE, ADMIN_TOKEN, user_token):
            assert secret not in html, f"{path} shows a secret or a token"
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "mg_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert ADMIN_TOKEN not in session["value"]


@pytest.fixture()
def evil_site():
    """A page on another origin whose form posts to the console's stop action."""
    target = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = (f'<form id="f" method="post" action="{target["url"]}"><input name="csrf" value="guess"></form>'
                    '<script>document.getElementById("f").submit()</script>').encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield target, f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("evil_host", ["127.0.0.1", "localhost"])
def test_a_form_from_another_origin_changes_nothing(page, workspace, evil_site, evil_host):
    host, admin, _ = workspace
    target, evil_url = evil_site
    target["url"] = f"{host}/console/endpoints/support-chat/stop"
    sign_in(page, ADMIN_TOKEN)
    page.goto(evil_url.replace("127.0.0.1", evil_host))
    page.wait_for_load_state("networkidle")
    if evil_host == "127.0.0.1":
        # Another port of the same host is the same site, so SameSite sends the cookie: the CSRF
        # token and the Origin check are what refuse the form.
        expect(page.get_by_role("alert")).to_contain_text("came from another site")
        page.console_errors.clear()  # the 403 of the refusal
    else:
        # From another site the browser sends no session cookie (SameSite=Strict): sign in first.
        expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    assert not admin("GET", "/api/2.0/serving-endpoints/support-chat").get("stopped"), "the endpoint was stopped"


def test_phone_width_and_keyboard(chromium, workspace, shots):
    context = chromium.new_context(base_url=workspace[0], viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, ADMIN_TOKEN)
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"the list is {wide}px wider than a phone"
        page.screenshot(path=shots / "endpoints-phone.png", full_page=True)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "modelgate"
    finally:
        context.close()
