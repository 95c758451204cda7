// kombu-wasm/zlib for Cloudflare Workers (the "workerd" export condition): the zlib .wasm is
// imported as a compiled module and instantiated synchronously, after the core (workerd.js).
import "./workerd.js";
import wasm from "./wasm/zlib_bg.wasm";
import * as glue from "./wasm/zlib.js";
import { codecModule } from "./codecs-lib.js";

const zlib = codecModule(glue, undefined);
export const loadZlib = zlib.load;
export const loadZlibSync = zlib.loadSync;

loadZlibSync(wasm);
