//! Event delivery to containerd that survives a containerd restart.
//!
//! Events go through one thread in order. When containerd is away (restarting), publishing
//! fails; the thread reconnects to the same TTRPC address and retries until a deadline, so a
//! task that exits while containerd restarts still gets its TaskExit delivered.
//!
//! The shim drains the queue before it exits ([`InFlight::drain`]): containerd sends Shutdown
//! right after Delete, and the TaskDelete that Delete queued must not die with the process.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
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
    /// false when some are still pending.
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
    tx: Sender<Pending>,
    in_flight: Arc<InFlight>,
}

impl Events {
    /// Starts the delivery thread. `first` is the connection the shim library made at start.
    pub fn start(
        address: String,
        namespace: String,
        first: Option<RemotePublisher>,
        in_flight: Arc<InFlight>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Pending>();
        let counter = in_flight.clone();
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
                counter.finish();
            }
        })?;
        Ok(Self { tx, in_flight })
    }

    pub fn publish(&self, topic: &'static str, event: Box<dyn MessageDyn>) {
        self.in_flight.add();
        if self.tx.send(Pending { topic, event }).is_err() {
            self.in_flight.finish();
            log::error!("event thread is gone; dropping {topic}");
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
        let events = Events::start(address, "ns".into(), None, in_flight.clone()).unwrap();
        events.publish("/tasks/delete", Box::new(TaskDelete::default()));
        assert!(!in_flight.drain(Duration::from_millis(50)));
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
