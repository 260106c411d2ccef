//! Event delivery to containerd that survives a containerd restart.
//!
//! Events go through one task on the shim's runtime, in order. When containerd is away
//! (restarting), forwarding fails; the task reconnects to the same TTRPC address and retries
//! until a deadline, so a task that exits while containerd restarts still gets its TaskExit
//! delivered. (containerd-shim's async publisher retries a failed event behind later ones and
//! gives up after five tries, so it is not used.)
//!
//! The shim drains the queue before it exits ([`InFlight::drain`]): containerd sends Shutdown
//! right after Delete, and the TaskDelete that Delete queued must not die with the process.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::protos::ttrpc::context;
use containerd_shim::protos::api::Envelope;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// How long one event may wait for containerd to come back.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(300);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

struct Pending {
    topic: &'static str,
    event: Box<dyn MessageDyn>,
}

/// How many events were handed to [`Events::publish`] and are not yet delivered (or given up).
#[derive(Default)]
pub struct InFlight {
    count: Mutex<usize>,
    done: Condvar,
}

impl InFlight {
    fn count(&self) -> std::sync::MutexGuard<'_, usize> {
        self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self) {
        *self.count() += 1;
    }

    fn finish(&self) {
        let mut n = self.count();
        *n = n.saturating_sub(1);
        self.done.notify_all();
    }

    /// Waits until every published event is delivered or given up on, at most `timeout`;
    /// false when some are still pending. Blocks: off the runtime thread, which delivers.
    pub fn drain(&self, timeout: Duration) -> bool {
        let n = self.count();
        let (n, _) = self
            .done
            .wait_timeout_while(n, timeout, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *n == 0
    }
}

/// Publishes events to containerd in order, reconnecting as needed.
pub struct Events {
    tx: UnboundedSender<Pending>,
    in_flight: Arc<InFlight>,
}

/// One event as containerd's Forward call takes it.
fn envelope(namespace: &str, pending: &Pending) -> Result<ForwardRequest, String> {
    let event = containerd_shim::util::convert_to_any(pending.event.clone_box())
        .map_err(|e| e.to_string())?;
    let at = containerd_shim::util::timestamp().map_err(|e| e.to_string())?;
    let mut envelope = Envelope::new();
    envelope.set_topic(pending.topic.to_string());
    envelope.set_namespace(namespace.to_string());
    envelope.set_timestamp(at);
    envelope.set_event(event);
    let mut req = ForwardRequest::new();
    req.set_envelope(envelope);
    Ok(req)
}

fn connect(address: &str) -> Option<EventsClient> {
    // A unix connect: it fails at once while containerd is away.
    containerd_shim::util::connect(address)
        .map(|fd| EventsClient::new(Client::new(fd)))
        .map_err(|e| log::debug!("connect to containerd at {address}: {e}"))
        .ok()
}

impl Events {
    /// Starts the delivery task on the current tokio runtime. It connects at the first event.
    pub fn start(address: String, namespace: String, in_flight: Arc<InFlight>) -> Self {
        let (tx, mut rx) = unbounded_channel::<Pending>();
        let counter = in_flight.clone();
        tokio::spawn(async move {
            let mut client: Option<EventsClient> = None;
            while let Some(pending) = rx.recv().await {
                let req = match envelope(&namespace, &pending) {
                    Ok(r) => r,
                    Err(e) => {
                        log::error!("dropping event {}: {e}", pending.topic);
                        counter.finish();
                        continue;
                    }
                };
                let deadline = Instant::now() + DELIVERY_DEADLINE;
                let mut backoff = Duration::from_millis(20);
                loop {
                    if client.is_none() {
                        client = connect(&address);
                    }
                    if let Some(c) = &client {
                        let ctx = context::with_timeout(CALL_TIMEOUT.as_nanos() as i64);
                        match c.forward(ctx, &req).await {
                            Ok(_) => break,
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
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                counter.finish();
            }
        });
        Self { tx, in_flight }
    }

    pub fn publish(&self, topic: &'static str, event: Box<dyn MessageDyn>) {
        self.in_flight.add();
        if self.tx.send(Pending { topic, event }).is_err() {
            self.in_flight.finish();
            log::error!("event task is gone; dropping {topic}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::events::task::TaskDelete;

    #[test]
    fn drain_waits_for_undelivered_events() {
        let in_flight = Arc::new(InFlight::default());
        assert!(in_flight.drain(Duration::ZERO), "nothing published yet");
        // No containerd there: the event stays pending (retried until its deadline).
        let dir = tempfile::tempdir().unwrap();
        let address = dir.path().join("none.sock").display().to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let events = Events::start(address, "ns".into(), in_flight.clone());
            events.publish("/tasks/delete", Box::new(TaskDelete::default()));
            let waiting = in_flight.clone();
            // Off the runtime thread, as the shim drains.
            let drained =
                tokio::task::spawn_blocking(move || waiting.drain(Duration::from_millis(50)));
            assert!(!drained.await.unwrap());
        });
    }

    #[test]
    fn drain_returns_once_the_last_event_is_done() {
        let in_flight = Arc::new(InFlight::default());
        in_flight.add();
        let other = in_flight.clone();
        let t = std::thread::spawn(move || other.finish());
        assert!(in_flight.drain(Duration::from_secs(10)));
        t.join().unwrap();
    }
}
