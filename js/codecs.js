// kombu-wasm/codecs for browsers, bundlers and Node: loads the codecs module on import (top-level
// await) and registers yaml, msgpack, zlib/gzip, bzip2, lzma/xz and zstd with the core. See codecs-lib.js.
import * as glue from "./wasm/codecs.js";
import { codecModule } from "./codecs-lib.js";

const codecs = codecModule(glue, new URL("./wasm/codecs_bg.wasm", import.meta.url));

/** Load the codecs module and register its methods (once; importing this entry does it). */
export const loadCodecs = codecs.load;
/** The same, synchronously, from a compiled `WebAssembly.Module`. */
export const loadCodecsSync = codecs.loadSync;

await loadCodecs();
