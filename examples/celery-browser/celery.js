// Call a Celery task from a browser page: Celery's task message (protocol v2) published with
// the kombu-wasm package over gateway+ws://, and the result read from the reply queue the
// worker's rpc:// result backend answers to. Used by index.html (and its test,
// js/test/redis.test.mjs).

/**
 * Run Celery task `name` with `args` and `kwargs` on a worker consuming `queue`; resolves to
 * its result, rejects with the task's exception text when it failed, or after `timeout` ms.
 */
export async function callTask(conn, { Queue }, name, args = [], kwargs = {}, { queue = "celery", timeout = 60000 } = {}) {
  const id = crypto.randomUUID();
  // The rpc:// backend publishes the result to reply_to (the default exchange), tagged with
  // correlation_id = the task id.
  const replies = new Queue(`replies.${id}`, { autoDelete: true });
  const consumer = conn.Consumer([replies]);
  await consumer.consume();
  try {
    await conn.Producer().publish([args, kwargs, { callbacks: null, errbacks: null, chain: null, chord: null }], {
      routingKey: queue,
      correlationId: id,
      replyTo: replies,
      headers: {
        lang: "py",
        task: name,
        id,
        root_id: id,
        parent_id: null,
        group: null,
        retries: 0,
        eta: null,
        expires: null,
        timelimit: [null, null],
        argsrepr: JSON.stringify(args),
        kwargsrepr: JSON.stringify(kwargs),
        origin: "kombu-wasm-browser",
      },
    });
    const deadline = Date.now() + timeout;
    for (;;) {
      const m = await consumer.next({ timeout: Math.max(1, deadline - Date.now()) });
      m.ack();
      if (m.properties.correlation_id !== id) continue;
      const r = m.payload;
      if (r.status === "SUCCESS") return r.result;
      if (r.status === "FAILURE") throw new Error(`${name} failed: ${r.result?.exc_type}: ${r.result?.exc_message}`);
    }
  } finally {
    await consumer.cancel();
  }
}
