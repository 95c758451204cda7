// The package's types under `tsc --strict --noEmit`, with TypeScript 5.x and 7 (both pinned in
// devDependencies): typed usage (test/types/usage.ts) and every JavaScript example of
// js/README.md and README.md, checked as TypeScript against the package's own types (the
// names an example uses without defining — `producer`, `conn`... — are declared for it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, "..");

/** The ```js / ```ts blocks of a Markdown file. */
const examples = (file) => [...readFileSync(file, "utf8").matchAll(/```(?:js|ts|javascript|typescript)\n([\s\S]*?)```/g)].map((m) => m[1]);

const globals = `import type * as K from "kombu-wasm";
declare global {
  var conn: K.Connection;
  var producer: K.Producer;
  var consumer: K.Consumer;
  var queue: K.Queue;
  var body: K.Body;
  function compress(bytes: Uint8Array): Uint8Array;
  function decompress(bytes: Uint8Array): Uint8Array;
  var MyMessage: { encode(body: unknown): { finish(): Uint8Array }; decode(bytes: Uint8Array): { toJSON(): K.Payload } };
}
export {};
`;

for (const [version, tsc] of [["5", join(pkgDir, "node_modules", "typescript-5", "bin", "tsc")], ["7", join(pkgDir, "node_modules", "typescript", "bin", "tsc")]]) {
  test(`tsc --strict (TypeScript ${version}) accepts the typed usage and every README example`, { timeout: 300000 }, () => {
    // Inside the package, so that "kombu-wasm" resolves to it (self-reference) with its exports.
    const dir = mkdtempSync(join(here, ".types-"));
    try {
      const files = ["globals.d.ts", "usage.ts"];
      writeFileSync(join(dir, "globals.d.ts"), globals);
      copyFileSync(join(here, "types", "usage.ts"), join(dir, "usage.ts"));
      const snippets = [...examples(join(pkgDir, "README.md")), ...examples(join(pkgDir, "..", "README.md"))];
      assert.ok(snippets.length >= 5, `${snippets.length} examples found`);
      snippets.forEach((code, i) => {
        writeFileSync(join(dir, `example${i}.ts`), `${code}\nexport {};\n`);
        files.push(`example${i}.ts`);
      });
      writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, target: "es2022", module: "nodenext", moduleResolution: "nodenext", lib: ["es2022", "dom"], types: [], skipLibCheck: false },
        files,
      }));
      let out = "";
      try {
        execFileSync(process.execPath, [tsc, "-p", dir], { encoding: "utf8", stdio: "pipe" });
      } catch (e) {
        out = `${e.stdout}${e.stderr}`;
      }
      assert.equal(out.trim(), "", `tsc ${version} found errors:\n${out}\n${snippets.map((c, i) => `example${i}.ts:\n${c}`).join("\n")}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
