// kombu-wasm/codecs for Cloudflare Workers (the "workerd" export condition): the codecs .wasm is
// imported as a compiled module and instantiated synchronously, after the core (workerd.js).
import "./workerd.js";
import wasm from "./wasm/codecs_bg.wasm";
import * as glue from "./wasm/codecs.js";
import { codecModule } from "./codecs-lib.js";

const codecs = codecModule(glue, undefined);
export const loadCodecs = codecs.load;
export const loadCodecsSync = codecs.loadSync;

loadCodecsSync(wasm);
