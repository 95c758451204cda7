// kombu-wasm/codecs: importing this entry loads the codecs module and registers the yaml and
// msgpack serializers and zlib/gzip, bzip2, lzma/xz and zstd compression with the core.

/** Load the codecs module and register its methods (once; the entry already did). */
export declare function loadCodecs(source?: BufferSource | URL | string | WebAssembly.Module): Promise<void>;
/** The same, synchronously, from a compiled module (the core must be initialised). */
export declare function loadCodecsSync(module: WebAssembly.Module): void;
