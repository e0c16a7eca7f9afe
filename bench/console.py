"""Page weight and load time of each console page in headless Chromium, against the budget (first
page under 300 KB and 200 ms on loopback). Every load is cold: a new browser context, so nothing
is cached. The baseline, measured in the same run, is a cold load of the console's stylesheet
alone: the time a browser needs to fetch anything at all from this server, which the noise of a
shared machine moves as much as the pages. Prints a markdown report."""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile

import requests
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from harness import start_mock_upstream, start_server  # noqa: E402

TOKEN = "mgt_bench_console_admin_token_0123456789"
PAGES = ["/", "/console/endpoints/chat-00", "/console/playground", "/console/usage", "/console/operations",
         "/console/identity"]
MEASURE = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const all = [nav, ...performance.getEntriesByType("resource")];
  return {ms: nav.loadEventEnd - nav.startTime, bytes: all.reduce((n, e) => n + e.transferSize, 0),
          requests: all.length};
}"""


def seed(host, mock, endpoints, queries):
    h = {"Authorization": f"Bearer {TOKEN}"}
    call = lambda m, p, b=None: requests.request(m, f"{host}{p}", json=b, headers=h, timeout=30)  # noqa: E731
    call("POST", "/api/2.0/secrets/scopes/create", {"scope": "llm"})
    call("POST", "/api/2.0/secrets/put", {"scope": "llm", "key": "k", "string_value": "sk-bench"})
    for i in range(endpoints):
        call("POST", "/api/2.0/serving-endpoints", {
            "name": f"chat-{i:02}", "tags": [{"key": "team", "value": f"team-{i % 4}"}],
            "config": {"served_entities": [{"name": "primary", "external_model": {
                "provider": "openai", "name": "gpt-4o-mini", "task": "llm/v1/chat",
                "openai_config": {"openai_api_key": "{{secrets/llm/k}}", "openai_api_base": f"{mock}/v1"}}}]}})
    for _ in range(200):
        if all(call("GET", f"/api/2.0/serving-endpoints/chat-{i:02}").json()["state"]["config_update"]
               != "IN_PROGRESS" for i in range(endpoints)):
            break
    for q in range(queries):
        call("POST", f"/serving-endpoints/chat-{q % endpoints:02}/invocations",
             {"messages": [{"role": "user", "content": f"question {q}"}], "stream": q % 3 == 0})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target" / "release"))
    ap.add_argument("--chromium", default=os.environ.get("MODELGATE_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--loads", type=int, default=15)
    ap.add_argument("--endpoints", type=int, default=40)
    ap.add_argument("--queries", type=int, default=2000)
    a = ap.parse_args()
    bin_dir = pathlib.Path(a.bin)
    mock = start_mock_upstream(bin_dir)
    data = tempfile.TemporaryDirectory()
    server = start_server(data.name, TOKEN, bin_dir=bin_dir, env=dict(os.environ, RUST_LOG="warn"))
    try:
        seed(server.host, mock.host, a.endpoints, a.queries)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=a.chromium, headless=True, args=["--no-sandbox"])
            signed_in = browser.new_context(base_url=server.host)
            page = signed_in.new_page()
            page.goto("/")
            page.get_by_label("Personal access token").fill(TOKEN)
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.wait_for_url("**/")
            cookies = signed_in.cookies()
            signed_in.close()

            def cold(path):
                ctx = browser.new_context(base_url=server.host)
                ctx.add_cookies(cookies)
                pg = ctx.new_page()
                pg.goto(path, wait_until="load")
                m = pg.evaluate(MEASURE)
                ctx.close()
                return m

            results = {}
            for path in ["/console/assets/console.css"] + PAGES:
                cold(path)  # warm the server's own caches, not the browser's
                runs = [cold(path) for _ in range(a.loads)]
                results[path] = (statistics.median(r["ms"] for r in runs), runs[-1]["bytes"], runs[-1]["requests"])
            browser.close()
    finally:
        server.stop()
        mock.stop()
        data.cleanup()
    base_ms = results["/console/assets/console.css"][0]
    print(f"# Console page weight and load time ({a.endpoints} endpoints, {a.queries} queries, "
          f"median of {a.loads} cold loads)\n")
    print("| page | bytes (all requests) | requests | load ms | vs baseline | budget |")
    print("|---|---:|---:|---:|---:|---|")
    for path, (ms, size, n) in results.items():
        within = "" if path.endswith(".css") else ("ok" if size < 300_000 and ms < 200 else "OVER")
        print(f"| `{path}` | {size:,} | {n} | {ms:.1f} | {ms / base_ms:.2f}x | {within} |")
    print(f"\nBaseline: the stylesheet alone, {base_ms:.1f} ms. Budget: under 300 KB and 200 ms.")


if __name__ == "__main__":
    main()
