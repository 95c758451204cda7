"""A Celery app for native-gateway/tests/redis_celery.rs and examples/celery_task.rs.

Broker from CELERY_BROKER (a redis:// URL), keys under CELERY_KEYPREFIX; results over the
rpc:// backend (Kombu messages to the caller's reply_to queue). Run a worker with

    celery -A celery_app worker --pool=solo -Q QUEUE --without-heartbeat --without-gossip --without-mingle
"""
import os

from celery import Celery

app = Celery("kombu_wasm_celery", broker=os.environ.get("CELERY_BROKER", "redis://127.0.0.1:6379/0"), backend="rpc://")
app.conf.broker_transport_options = {
    "global_keyprefix": os.environ.get("CELERY_KEYPREFIX", ""),
    "polling_interval": 0.2,
}
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False


@app.task(name="kombu_wasm.add")
def add(x, y):
    return x + y


@app.task(name="kombu_wasm.greet")
def greet(name, punctuation="!"):
    return "hello " + name + punctuation
