// kombu-wasm/zlib: importing this entry loads a small module with zlib/gzip compression only
// (Kombu's application/x-gzip) and registers it with the core.

/** Load the zlib module and register zlib/gzip (once; the entry already did). */
export declare function loadZlib(source?: BufferSource | URL | string | WebAssembly.Module): Promise<void>;
/** The same, synchronously, from a compiled module (the core must be initialised). */
export declare function loadZlibSync(module: WebAssembly.Module): void;
