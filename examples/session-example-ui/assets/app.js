// The example app's page: calls its JSON endpoints and shows the session. Served with a
// Content-Security-Policy that allows only scripts from the page's own origin, so this
// file holds all of the page's code (no inline script, no inline handlers).
"use strict";

const sessionView = document.getElementById("session");
const statusLine = document.getElementById("status");

// Same-origin fetch: the browser sends the session cookie itself; scripts never see it.
async function call(method, path) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    cache: "no-store",
    headers: { Accept: "application/json" },
  });
  const body = await response.text();
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${body}`);
  }
  return body;
}

// GET / and show the session; data-renders counts the updates, so a test can wait for one.
async function refresh() {
  const data = JSON.parse(await call("GET", "/"));
  sessionView.textContent = JSON.stringify(data, null, 2);
  sessionView.dataset.renders = String(Number(sessionView.dataset.renders) + 1);
}

async function act(method, path) {
  statusLine.textContent = "";
  try {
    if (method) {
      statusLine.textContent = await call(method, path);
    }
  } catch (error) {
    statusLine.textContent = error.message;
  }
  try {
    await refresh();
  } catch (error) {
    statusLine.textContent = error.message;
  }
}

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = document.getElementById("user").value;
  act("POST", `/login?user=${encodeURIComponent(user)}`);
});
document.getElementById("counter").addEventListener("click", () => act("POST", "/counter"));
document.getElementById("logout").addEventListener("click", () => act("POST", "/logout"));

act(null, null);
