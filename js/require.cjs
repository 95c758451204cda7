// What `require("kombu-wasm")` (and its other entries) gets: kombu-wasm is an ES module only,
// since it loads its WebAssembly before it can be used (top-level await), which `require`
// cannot wait for (Node 22's require(esm) included).
throw Object.assign(new Error('kombu-wasm is an ES module: load it with `import { Connection } from "kombu-wasm"`, or from CommonJS with `const { Connection } = await import("kombu-wasm")` (require cannot load it: it loads its WebAssembly with top-level await)'), { code: "ERR_REQUIRE_ESM" });
