// Serve the playground: www/ at /, the npm package (js/) at /pkg/.
//   node www/serve.mjs [port]      (default 8765; 0 picks a free one)
// Until kombu-gateway serves it, this is how the README's run command shows the page.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, extname, dirname, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const types = { ".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html", ".css": "text/css", ".wasm": "application/wasm", ".json": "application/json", ".d.ts": "text/plain" };

export function servePlayground(port = 0, host = "127.0.0.1") {
  const server = createServer(async (req, res) => {
    let path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    if (path.endsWith("/")) path += "index.html";
    const file = path.startsWith("/pkg/") ? join(repo, "js", path.slice(5)) : join(repo, "www", path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}`);
    }
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve({ server, base: `http://${host}:${server.address().port}` })));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { base } = await servePlayground(Number(process.argv[2] ?? 8765), process.env.HOST ?? "127.0.0.1");
  console.log(`kombu-wasm playground on ${base}/ (memory:// runs in the page)`);
}
