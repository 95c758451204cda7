// kombu-wasm/codecs (its loaders; the entries are codecs.js and codecs-workerd.js): the yaml
// and msgpack serializers and the compression methods — zlib/gzip, bzip2, lzma/xz and zstd —
// in a second WebAssembly module, loaded only by the apps that import this entry, so that the
// core download stays small:
//
//   import "kombu-wasm/codecs";            // once, anywhere in the app
//   await producer.publish(body, { serializer: "msgpack", compression: "bzip2" });
//
// On import the entry loads the codecs module (once; from disk in Node, fetched next to this
// file elsewhere, imported as a module in Cloudflare Workers) and registers each of its
// serializers (`registerJsonCodec`) and compression methods (`registerCompression`) with the
// core, which then uses them as its own. Methods the core already has are left to the core.
// As in Kombu, yaml and msgpack stay refused by consumers unless their `accept` names them.
// The codecs register with whichever build of the core the app imports ("kombu-wasm" or
// "kombu-wasm/ws"), as soon as it is loaded, whatever the order of the imports.
import initCodecs, { initSync as initCodecsSync, methods, compress, decompress, serializers, fromJson, toJson } from "./wasm/codecs.js";
import { whenLoaded, wasmSource, registerCompression, registerJsonCodec, compressionMethods } from "./lib.js";

let ready;

function registerAll() {
  const known = new Set(compressionMethods().map(([type]) => type));
  for (const [type, aliases] of methods()) {
    if (known.has(type)) continue;
    registerCompression(type, { aliases, compress: (b) => compress(type, b), decompress: (b) => decompress(type, b) });
  }
  for (const [name, contentType, contentEncoding] of serializers()) {
    registerJsonCodec(name, { contentType, contentEncoding, fromJson: (json) => fromJson(name, json), toJson: (body) => toJson(name, body) });
  }
}

/** Load the codecs module and register its methods (once). `source`: bytes, a URL or a
 * compiled module of `wasm/codecs_bg.wasm`. */
export function loadCodecs(source) {
  ready ??= (async () => {
    await initCodecs(await wasmSource(source, new URL("./wasm/codecs_bg.wasm", import.meta.url)));
    whenLoaded(registerAll);
  })();
  return ready;
}

/** The same, synchronously, from a compiled `WebAssembly.Module` (Cloudflare Workers); the
 * core must be initialised already (`kombu-wasm`'s workerd entry does it on import). */
export function loadCodecsSync(module) {
  if (ready) return;
  initCodecsSync({ module });
  whenLoaded(registerAll);
  ready = Promise.resolve();
}
