// The loader of kombu-wasm's separately loaded codec modules (the entries are codecs.js and
// zlib.js, with codecs-workerd.js and zlib-workerd.js for Cloudflare Workers):
//
//   import "kombu-wasm/codecs";  // yaml, msgpack, zlib/gzip, bzip2, lzma/xz and zstd (~206 KB gzipped)
//   import "kombu-wasm/zlib";    // only zlib/gzip (~42 KB gzipped): Kombu's and Celery's usual compression
//   await producer.publish(body, { serializer: "msgpack", compression: "bzip2" });
//
// Each is a WebAssembly module of its own, loaded only by the apps that import its entry, so
// that the core download stays small. On import the entry loads its module (once; from disk
// in Node, fetched next to this file elsewhere, imported as a module in Cloudflare Workers)
// and registers each of its serializers (`registerJsonCodec`) and compression methods
// (`registerCompression`) with the core, which then uses them as its own. Methods the core
// already has (from another codec module) are left as they are. As in Kombu, yaml and msgpack
// stay refused by consumers unless their `accept` names them.
// The codecs register with whichever build of the core the app imports ("kombu-wasm" or
// "kombu-wasm/ws"), as soon as it is loaded, whatever the order of the imports.
import { whenLoaded, wasmSource, registerCompression, registerJsonCodec, compressionMethods } from "./lib.js";

/** A codec module: `glue` is its wasm-bindgen glue, `file` the URL of its .wasm (read in Node).
 * Returns its loaders: `load(source)` (once; a Promise) and `loadSync(module)`. */
export function codecModule(glue, file) {
  let ready;
  const registerAll = () => {
    const known = new Set(compressionMethods().map(([type]) => type));
    for (const [type, aliases] of glue.methods()) {
      if (known.has(type)) continue;
      registerCompression(type, { aliases, compress: (b) => glue.compress(type, b), decompress: (b) => glue.decompress(type, b) });
    }
    for (const [name, contentType, contentEncoding] of glue.serializers()) {
      registerJsonCodec(name, { contentType, contentEncoding, fromJson: (json) => glue.fromJson(name, json), toJson: (body) => glue.toJson(name, body) });
    }
  };
  return {
    load(source) {
      ready ??= (async () => {
        await glue.default(await wasmSource(source, file));
        whenLoaded(registerAll);
      })();
      return ready;
    },
    loadSync(module) {
      if (ready) return;
      glue.initSync({ module });
      whenLoaded(registerAll);
      ready = Promise.resolve();
    },
  };
}
