// kombu-wasm/zlib for browsers, bundlers and Node: only zlib/gzip compression (Kombu's
// application/x-gzip, what Celery's "gzip" means), a module a quarter the size of
// kombu-wasm/codecs, loaded on import (top-level await). See codecs-lib.js.
import * as glue from "./wasm/zlib.js";
import { codecModule } from "./codecs-lib.js";

const zlib = codecModule(glue, new URL("./wasm/zlib_bg.wasm", import.meta.url));

/** Load the zlib module and register zlib/gzip (once; importing this entry does it). */
export const loadZlib = zlib.load;
/** The same, synchronously, from a compiled `WebAssembly.Module`. */
export const loadZlibSync = zlib.loadSync;

await loadZlib();
