"""``/websocket/docs``: a small self-contained page that renders the OpenAPI spec and tries it.

Self-contained (no CDN, no vendored bundle): the admin API is thirteen
operations, and a 1.5 MB Swagger UI bundle would be most of roomcast's size.
The page builds its DOM with ``textContent`` only, under a strict CSP.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>roomcast server API</title>
<link rel="stylesheet" href="{prefix}/websocket/docs.css"><link rel="icon" href="data:,">
<script type="module" src="{prefix}/websocket/docs.js" data-spec="{spec}"></script>
</head><body>
<header><h1 id="title">roomcast server API</h1><p id="info"></p>
<p><a href="{spec}">openapi.json</a></p></header>
<form class="auth" id="credentials" aria-label="Credentials">
<label>X-API-Key <input id="api-key" type="password" autocomplete="off"></label>
<label>Bearer token <input id="bearer" type="password" autocomplete="off"></label>
<span class="hint">Both empty: your login cookie is used (administrators only).</span>
</form>
<main id="operations"><p>Loading the spec...</p></main>
<section id="schemas"><h2>Schemas</h2></section>
</body></html>
"""

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem;color:#1d232a}
header p{color:#4a5563}.auth{display:flex;gap:1rem;flex-wrap:wrap;align-items:center;
background:#f3f5f8;padding:.75rem;border-radius:6px}.hint{color:#5b6573;font-size:.9em}
details.op{border:1px solid #d6dbe2;border-radius:6px;margin:.5rem 0}
details.op>summary{cursor:pointer;padding:.5rem;display:flex;gap:.75rem;align-items:baseline}
.m{font-weight:700;min-width:4.5rem;font-family:monospace}.m.get{color:#1b6ac9}
.m.post{color:#1e8a3c}.m.put{color:#a25a00}.m.delete{color:#b3261e}
code,pre,textarea,input{font-family:ui-monospace,monospace}.body{padding:0 .75rem .75rem}
textarea{width:100%;min-height:7rem}pre{background:#f6f8fa;padding:.5rem;overflow:auto;
max-height:24rem}table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left;
vertical-align:top}.status{font-weight:700}.ok{color:#1e8a3c}.err{color:#b3261e}
"""

_JS = r"""
const spec = document.querySelector("script[data-spec]").dataset.spec;
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function refName(schema) {
  return schema?.$ref ? schema.$ref.split("/").pop() : "";
}

function paramRow(param) {
  const input = el("input", { name: param.name, placeholder: param.schema?.examples?.[0] ?? "" });
  input.dataset.in = param.in;
  const rule = param.schema?.pattern ?? param.schema?.enum?.join(" | ") ?? param.schema?.type ?? "";
  return el("tr", {}, el("td", {}, el("code", {}, param.name)), el("td", {}, param.in),
    el("td", {}, input), el("td", {}, el("code", {}, String(rule))));
}

function headers(hasBody) {
  const out = { Accept: "application/json" };
  if (hasBody) out["Content-Type"] = "application/json";
  const key = $("api-key").value.trim();
  const bearer = $("bearer").value.trim();
  if (key) out["X-API-Key"] = key;
  else if (bearer) out.Authorization = `Bearer ${bearer}`;
  return out;
}

async function send(method, path, form, textarea, output) {
  let url = path;
  const query = new URLSearchParams();
  for (const input of form.querySelectorAll("input[name]")) {
    const value = input.value.trim();
    if (input.dataset.in === "path") {
      url = url.replace(`{${input.name}}`, encodeURIComponent(value));
    } else if (value) query.set(input.name, value);
  }
  if ([...query].length) url += `?${query}`;
  const body = textarea && textarea.value.trim() ? textarea.value : undefined;
  output.replaceChildren(el("p", {}, `${method} ${url} ...`));
  try {
    const response = await fetch(url, { method, headers: headers(body !== undefined), body });
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON */ }
    output.replaceChildren(
      el("p", { class: `status ${response.ok ? "ok" : "err"}` },
        `${response.status} ${response.statusText}`),
      el("pre", {}, shown));
  } catch (error) {
    output.replaceChildren(el("p", { class: "status err" }, String(error)));
  }
}

function operation(path, method, op) {
  const form = el("form");
  const params = op.parameters ?? [];
  if (params.length) form.append(el("table", {}, ...params.map(paramRow)));
  let textarea = null;
  const media = op.requestBody?.content?.["application/json"];
  if (media) {
    const name = refName(media.schema);
    form.append(el("p", {}, "Body ", el("code", {}, name),
      op.requestBody.required ? "" : " (optional)"));
    textarea = el("textarea", { spellcheck: "false" });
    textarea.value = media.example ? JSON.stringify(media.example, null, 2) : "";
    form.append(textarea);
  }
  const output = el("div", { class: "output" });
  const button = el("button", { type: "submit" }, "Send");
  form.append(el("p", {}, button));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(method.toUpperCase(), path, form, textarea, output);
  });
  const responses = el("table", {}, ...Object.entries(op.responses).map(([code, r]) => {
    const schema = Object.values(r.content ?? {})[0]?.schema;
    return el("tr", {}, el("td", {}, el("code", {}, code)), el("td", {}, r.description ?? ""),
      el("td", {}, el("code", {}, refName(schema) || schema?.type || "")));
  }));
  const auth = (op.security ?? [1]).length ? "administrator or API key" : "public";
  return el("details", { class: "op" },
    el("summary", {}, el("span", { class: `m ${method}` }, method.toUpperCase()),
      el("code", {}, path), el("span", {}, op.summary ?? "")),
    el("div", { class: "body" }, el("p", {}, op.description ?? ""),
      el("p", { class: "hint" }, `Authorization: ${auth}`), form,
      el("h4", {}, "Responses"), responses, output));
}

async function main() {
  $("credentials").addEventListener("submit", (event) => event.preventDefault());
  const doc = await (await fetch(spec)).json();
  $("title").textContent = `${doc.info.title} ${doc.info.version}`;
  $("info").textContent = doc.info.description ?? "";
  const main = $("operations");
  main.replaceChildren();
  for (const tag of doc.tags ?? []) {
    const section = el("section", {}, el("h2", {}, tag.name));
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if ((op.tags ?? []).includes(tag.name)) section.append(operation(path, method, op));
      }
    }
    main.append(section);
  }
  for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) {
    $("schemas").append(el("details", { id: `schema-${name}` },
      el("summary", {}, el("code", {}, name)), el("pre", {}, JSON.stringify(schema, null, 2))));
  }
}

main().catch((error) => {
  $("operations").replaceChildren(el("p", { class: "err" }, `Could not load the spec: ${error}`));
});
"""


def _static(body: str, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type=content_type,
                            headers={"Content-Security-Policy": _CSP,
                                     "X-Content-Type-Options": "nosniff"})

    return handler


def add_docs_routes(app: web.Application, spec_path: str, prefix: str = "") -> None:
    page = _HTML.replace("{spec}", spec_path).replace("{prefix}", prefix)
    app.router.add_get(prefix + "/websocket/docs", _static(page, "text/html"))
    app.router.add_get(prefix + "/websocket/docs.js", _static(_JS, "text/javascript"))
    app.router.add_get(prefix + "/websocket/docs.css", _static(_CSS, "text/css"))
