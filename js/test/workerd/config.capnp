# workerd configuration for js/test/workerd.test.mjs: one worker that imports the package's
# "workerd" entry (workerd.js) and runs the quick start on memory://. The modules are named
# as the package lays them out, so the package's relative imports resolve unchanged.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:0", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "worker.mjs"),
    (name = "kombu-wasm", esModule = embed "../../workerd.js"),
    (name = "lib.js", esModule = embed "../../lib.js"),
    (name = "wasm/kombu.js", esModule = embed "../../wasm/kombu.js"),
    (name = "wasm/kombu_bg.wasm", wasm = embed "../../wasm/kombu_bg.wasm"),
  ],
  compatibilityDate = "2025-01-01",
);
