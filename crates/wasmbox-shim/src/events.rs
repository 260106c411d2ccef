//! Event delivery to containerd that survives a containerd restart.
//!
//! Events go through one thread in order. When containerd is away (restarting), publishing
//! fails; the thread reconnects to the same TTRPC address and retries until a deadline, so a
//! task that exits while containerd restarts still gets its TaskExit delivered.

use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::context;
use containerd_shim::publisher::RemotePublisher;

/// How long one event may wait for containerd to come back.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(300);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

struct Pending {
    topic: &'static str,
    event: Box<dyn MessageDyn>,
}

/// Publishes events to containerd in order, reconnecting as needed.
pub struct Events {
    tx: Sender<Pending>,
}

impl Events {
    /// Starts the delivery thread. `first` is the connection the shim library made at start.
    pub fn start(address: String, namespace: String, first: Option<RemotePublisher>) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Pending>();
        std::thread::Builder::new().name("wasmbox-events".into()).spawn(move || {
            let mut client = first;
            for pending in rx {
                let deadline = Instant::now() + DELIVERY_DEADLINE;
                let mut backoff = Duration::from_millis(20);
                loop {
                    if client.is_none() {
                        client = RemotePublisher::new(&address)
                            .map_err(|e| log::debug!("connect to containerd at {address}: {e}"))
                            .ok();
                    }
                    if let Some(c) = &client {
                        let ctx = context::with_timeout(CALL_TIMEOUT.as_nanos() as i64);
                        match c.publish(ctx, pending.topic, &namespace, pending.event.clone_box()) {
                            Ok(()) => break,
                            Err(e) => {
                                log::warn!("publish {} failed, reconnecting: {e}", pending.topic);
                                client = None;
                            }
                        }
                    }
                    if Instant::now() >= deadline {
                        log::error!("dropping event {}: containerd unreachable", pending.topic);
                        break;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        })?;
        Ok(Self { tx })
    }

    pub fn publish(&self, topic: &'static str, event: Box<dyn MessageDyn>) {
        if self.tx.send(Pending { topic, event }).is_err() {
            log::error!("event thread is gone; dropping {topic}");
        }
    }
}
