// kombu-wasm/codecs for browsers, bundlers and Node: loads the codecs module on import (top-level
// await) and registers yaml, msgpack, zlib/gzip, bzip2, lzma/xz and zstd with the core. See codecs-lib.js.
import { loadCodecs } from "./codecs-lib.js";

await loadCodecs();

export * from "./codecs-lib.js";
