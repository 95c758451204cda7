# workerd configuration for js/test/workerd.test.mjs: one worker that imports the package's
# "workerd" entries (workerd.js, codecs-workerd.js) and runs the quick start on memory://.
# The package's files are named under kombu-wasm/ as it lays them out, so its relative
# imports resolve unchanged.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:0", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "worker.mjs"),
    # The package's exports map, as wrangler/esbuild resolve it with the "workerd" condition
    # (imports resolve relative to the importing module's name).
    (name = "kombu-wasm", esModule = "export * from \"kombu-wasm/workerd.js\";"),
    (name = "kombu-wasm/codecs", esModule = "export * from \"./codecs-workerd.js\";"),
    (name = "kombu-wasm/workerd.js", esModule = embed "../../workerd.js"),
    (name = "kombu-wasm/lib.js", esModule = embed "../../lib.js"),
    (name = "kombu-wasm/wasm/kombu.js", esModule = embed "../../wasm/kombu.js"),
    (name = "kombu-wasm/wasm/kombu_bg.wasm", wasm = embed "../../wasm/kombu_bg.wasm"),
    (name = "kombu-wasm/codecs-workerd.js", esModule = embed "../../codecs-workerd.js"),
    (name = "kombu-wasm/codecs-lib.js", esModule = embed "../../codecs-lib.js"),
    (name = "kombu-wasm/wasm/codecs.js", esModule = embed "../../wasm/codecs.js"),
    (name = "kombu-wasm/wasm/codecs_bg.wasm", wasm = embed "../../wasm/codecs_bg.wasm"),
  ],
  compatibilityDate = "2025-01-01",
);
