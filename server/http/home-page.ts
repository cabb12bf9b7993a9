import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";

/**
 * What a person who opens the API address in a browser sees while the web
 * console is not built: what this is and where to go next. Static, no script, no
 * external resource, so the Content-Security-Policy can forbid everything.
 */
function page(version: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>metal control plane</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:0 .25rem}</style>
</head>
<body>
<h1>metal</h1>
<p>A bare-metal cloud control plane (version ${escapeHtml(version)}). This address serves its API: Connect (JSON and binary over HTTP/1.1), gRPC and gRPC-Web, all with a bearer token.</p>
<ul>
<li>Health: <code>metal.api.v1.HealthService/Get</code> (no token needed; <code>curl -X POST -H 'Content-Type: application/json' -d '{}' http://HOST/metal.api.v1.HealthService/Get</code>) and the gRPC health protocol <code>grpc.health.v1.Health</code></li>
<li><a href="/metrics">Prometheus metrics</a></li>
<li>The contracts: the <code>proto/</code> folder of the source; the manual: its <code>README.md</code> and <code>docs/</code></li>
</ul>
<p>From a shell: <code>metalctl machine list</code>, or with curl:</p>
<pre><code>curl -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
  -d '{}' http://HOST/metal.api.v1.PartitionService/List</code></pre>
<p>The web console is not built here: run <code>npm run build:web</code> in the source folder, then reload this page (or point <code>METAL_WEB_DIR</code> at a built console).</p>
</body>
</html>
`;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Answers GET and HEAD of "/" with the page; false for any other request. */
export function serveHomePage(req: { method?: string; url?: string }, res: ServerResponse | Http2ServerResponse, version: string): boolean {
  if (req.url !== "/" || (req.method !== "GET" && req.method !== "HEAD")) return false;
  const body = page(version);
  res.writeHead(200, {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
  });
  if (req.method === "HEAD") res.end();
  else res.end(body);
  return true;
}
