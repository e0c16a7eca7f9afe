// Filters the rows of a table marked data-filterable as the user types into its filter box.
document.querySelectorAll("input[data-filter]").forEach((box) => {
  const table = document.getElementById(box.dataset.filter);
  box.addEventListener("input", () => {
    const q = box.value.toLowerCase();
    table.querySelectorAll("tbody tr").forEach((row) => {
      row.hidden = q !== "" && !row.textContent.toLowerCase().includes(q);
    });
  });
});

// A select marked data-autosubmit applies its form as soon as it changes.
document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});

// Charts marked data-refresh are fetched again every 15 seconds while the page is visible; the
// server renders them, so a refresh is one small HTML fragment.
document.querySelectorAll("[data-refresh]").forEach((box) => {
  let timer;
  const refresh = async () => {
    if (document.hidden) return;
    try {
      const resp = await fetch(box.dataset.refresh, { headers: { "x-console-fetch": "1" } });
      if (resp.ok) box.innerHTML = await resp.text();
      else if (resp.status === 401) {
        window.clearInterval(timer);
        box.insertAdjacentHTML("afterbegin", '<div class="error" role="alert">Your session ended; sign in again to see live figures.</div>');
      }
    } catch (_) { /* offline for a moment: the next tick tries again */ }
  };
  timer = window.setInterval(refresh, 15000);
  document.addEventListener("visibilitychange", refresh);
});

// Asks before an action that changes an endpoint (stop, start, roll back, revoke).
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});

// The playground: sends the message to the chosen endpoint as a streamed chat query and shows
// the answer as it arrives; keeps the equivalent curl and Python requests up to date.
const playground = document.getElementById("playground");
if (playground) {
  const endpoint = document.getElementById("endpoint");
  const message = document.getElementById("message");
  const answer = document.getElementById("answer");
  const body = () => ({ messages: [{ role: "user", content: message.value }], stream: true });
  const showCode = () => {
    const host = window.location.origin;
    const json = JSON.stringify(body());
    document.getElementById("code-curl").textContent =
      `curl -N ${host}/serving-endpoints/${endpoint.value}/invocations \\\n  -H "Authorization: Bearer $MODELGATE_TOKEN" \\\n  -d '${json.replace(/'/g, "'\\''")}'`;
    document.getElementById("code-openai").textContent =
      `import os\nfrom openai import OpenAI\nclient = OpenAI(base_url="${host}/serving-endpoints", api_key=os.environ["MODELGATE_TOKEN"])\n` +
      `for chunk in client.chat.completions.create(model="${endpoint.value}", messages=${JSON.stringify(body().messages)}, stream=True):\n    print(chunk.choices[0].delta.content or "", end="")`;
    document.getElementById("code-sdk").textContent =
      `import os\nfrom databricks.sdk import WorkspaceClient\nfrom databricks.sdk.service.serving import ChatMessage, ChatMessageRole\nw = WorkspaceClient(host="${host}", token=os.environ["MODELGATE_TOKEN"])\n` +
      `print(w.serving_endpoints.query("${endpoint.value}", messages=[ChatMessage(role=ChatMessageRole.USER, content=${JSON.stringify(message.value)})]))`;
  };
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(document.getElementById(button.dataset.copy).textContent);
      button.textContent = "Copied";
      window.setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  });
  endpoint.addEventListener("change", showCode);
  message.addEventListener("input", showCode);
  showCode();
  playground.addEventListener("submit", async (event) => {
    event.preventDefault();
    answer.textContent = "";
    const resp = await fetch(`/console/playground/${encodeURIComponent(endpoint.value)}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": playground.dataset.csrf },
      body: JSON.stringify(body()),
    });
    if (!resp.ok || !resp.body) {
      answer.textContent = await resp.text();
      return;
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let end;
      while ((end = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, end).trim();
        pending = pending.slice(end + 1);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") continue;
        try {
          const chunk = JSON.parse(data);
          if (chunk.error) answer.textContent += `\n[${chunk.error.code}] ${chunk.error.message}`;
          else answer.textContent += chunk.choices?.[0]?.delta?.content ?? "";
        } catch (_) { /* a partial line waits for the rest */ }
      }
    }
  });
}
