// kombu-wasm/codecs for Cloudflare Workers (the "workerd" export condition): the codecs .wasm is
// imported as a compiled module and instantiated synchronously, after the core (workerd.js).
import "./workerd.js";
import wasm from "./wasm/codecs_bg.wasm";
import { loadCodecsSync } from "./codecs-lib.js";

loadCodecsSync(wasm);

export * from "./codecs-lib.js";
