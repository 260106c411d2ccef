//! The few containerd gRPC calls the shim needs: container → image name → image target, and
//! blobs from the content store. Blocking on purpose: the shim's task service is synchronous,
//! so each call runs on a current-thread tokio runtime owned by the client and dropped with
//! it. That runtime starts no threads, which matters because the shim later forks the create
//! helper (with exec) from this process.

use std::time::Duration;

use containerd_client::services::v1::{
    GetContainerRequest, GetImageRequest, ImageCreate, ImageUpdate, ListImagesRequest, ListNamespacesRequest, ReadContentRequest,
    SubscribeRequest,
};
use containerd_client::types::Envelope;
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::Client as Grpc;
use tokio::runtime::Runtime;

use super::error::ArtifactError;
use super::select::{BlobRef, BlobSource};
use super::verify;

/// How long connecting to containerd may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call (including a whole blob read) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Namespace header containerd reads from every request.
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// A connection to containerd's gRPC API in one namespace.
pub struct Client {
    runtime: Runtime,
    grpc: Grpc,
    namespace: String,
}

impl Client {
    /// Connects to containerd's gRPC socket (the shim's `-address`).
    pub fn connect(address: &str, namespace: &str) -> Result<Self, ArtifactError> {
        let connect_err = |message: String| ArtifactError::Connect {
            address: address.to_string(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| connect_err(format!("cannot start an async runtime: {e}")))?;
        let path = address.strip_prefix("unix://").unwrap_or(address).to_string();
        let grpc = runtime
            .block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, Grpc::from_path(path)).await })
            .map_err(|_| connect_err(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| connect_err(error_chain(&e)))?;
        Ok(Self {
            runtime,
            grpc,
            namespace: namespace.to_string(),
        })
    }

    /// Later calls go to namespace `namespace`.
    pub fn set_namespace(&mut self, namespace: &str) {
        self.namespace = namespace.to_string();
    }

    /// The names of containerd's namespaces.
    pub fn namespaces(&self) -> Result<Vec<String>, ArtifactError> {
        let mut namespaces = self.grpc.namespaces();
        let request = Request::new(ListNamespacesRequest { filter: String::new() });
        let response = self.call("list namespaces", namespaces.list(request))?;
        Ok(response.into_inner().namespaces.into_iter().map(|n| n.name).collect())
    }

    /// The names of the images in this client's namespace.
    pub fn images(&self) -> Result<Vec<String>, ArtifactError> {
        let request = self.request(ListImagesRequest { filters: Vec::new() })?;
        let mut images = self.grpc.images();
        let response = self.call(&format!("list images in {}", self.namespace), images.list(request))?;
        Ok(response.into_inner().images.into_iter().map(|i| i.name).collect())
    }

    /// Subscribes to containerd's image events of every namespace; read them with
    /// [`Self::next_image_event`]. The subscription is a task on this client's runtime, so it
    /// is under way (its request sent) while the client's other calls run: containerd answers
    /// a subscription only with its first event.
    pub fn image_events(&self) -> ImageEvents {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut events = self.grpc.events();
        let request = Request::new(SubscribeRequest {
            filters: vec![r#"topic~="^/images/""#.to_string()],
        });
        let failed = |status: Status| ArtifactError::Containerd {
            what: "image events".into(),
            message: status_message(&status),
        };
        self.runtime.spawn(async move {
            let mut stream = match events.subscribe(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    let _ = tx.send(Err(failed(status)));
                    return;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(envelope)) => {
                        if let Some(event) = image_event(&envelope) {
                            if tx.send(Ok(event)).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        let _ = tx.send(Err(failed(status)));
                        return;
                    }
                }
            }
        });
        ImageEvents { rx }
    }

    /// The next image created or updated, waiting for it; None when containerd ended the
    /// subscription (it is stopping).
    pub fn next_image_event(&self, events: &mut ImageEvents) -> Result<Option<ImageEvent>, ArtifactError> {
        self.runtime.block_on(events.rx.recv()).transpose()
    }

    fn request<T>(&self, message: T) -> Result<Request<T>, ArtifactError> {
        let mut request = Request::new(message);
        let value = self.namespace.parse().map_err(|_| ArtifactError::Containerd {
            what: "namespace".into(),
            message: format!("{:?} is not a valid header value", self.namespace),
        })?;
        request.metadata_mut().insert(NAMESPACE_HEADER, value);
        Ok(request)
    }

    fn call<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, ArtifactError> {
        self.runtime
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, fut).await })
            .map_err(|_| ArtifactError::Timeout(CALL_TIMEOUT))?
            .map_err(|status| ArtifactError::Containerd {
                what: what.to_string(),
                message: status_message(&status),
            })
    }

    /// The image name the container was created from ("" when it has none, e.g. `--rootfs`).
    pub fn container_image(&self, id: &str) -> Result<String, ArtifactError> {
        let request = self.request(GetContainerRequest { id: id.to_string() })?;
        let mut containers = self.grpc.containers();
        let response = self.call(&format!("get container {id}"), containers.get(request))?;
        Ok(response.into_inner().container.map(|c| c.image).unwrap_or_default())
    }

    /// The descriptor an image name points at (an index or a manifest).
    pub fn image_target(&self, name: &str) -> Result<BlobRef, ArtifactError> {
        let request = self.request(GetImageRequest { name: name.to_string() })?;
        let mut images = self.grpc.images();
        let response = self.call(&format!("get image {name}"), images.get(request))?;
        let target = response
            .into_inner()
            .image
            .and_then(|i| i.target)
            .ok_or_else(|| ArtifactError::Containerd {
                what: format!("get image {name}"),
                message: "the image has no target descriptor".into(),
            })?;
        Ok(BlobRef {
            media_type: target.media_type,
            digest: target.digest,
            size: target.size,
            annotations: target.annotations.into_iter().collect(),
        })
    }

    /// A whole blob from the content store, size-capped before reading.
    fn read_unverified(&self, blob: &BlobRef, what: &'static str, limit: i64) -> Result<Vec<u8>, ArtifactError> {
        if blob.size > limit {
            return Err(ArtifactError::TooLarge {
                what,
                digest: blob.digest.clone(),
                size: blob.size,
                limit,
            });
        }
        let request = self.request(ReadContentRequest {
            digest: blob.digest.clone(),
            offset: 0,
            size: 0,
        })?;
        let mut content = self.grpc.content();
        let label = format!("read {what} {}", blob.digest);
        let read = async {
            let mut stream = content.read(request).await?.into_inner();
            let mut bytes = Vec::with_capacity(usize::try_from(blob.size).unwrap_or(0));
            while let Some(chunk) = stream.message().await? {
                bytes.extend_from_slice(&chunk.data);
                // A store that sends more than the descriptor says is not trusted further.
                if bytes.len() as i64 > blob.size.max(0) {
                    break;
                }
            }
            Ok(bytes)
        };
        self.call(&label, read)
    }
}

/// An image created or updated (a pull, an import, a tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEvent {
    pub namespace: String,
    pub name: String,
}

/// A subscription to containerd's image events.
pub struct ImageEvents {
    rx: tokio::sync::mpsc::UnboundedReceiver<Result<ImageEvent, ArtifactError>>,
}

/// The image an event envelope names, for the events that make an image runnable.
fn image_event(envelope: &Envelope) -> Option<ImageEvent> {
    use prost::Message;
    let any = envelope.event.as_ref()?;
    let name = match envelope.topic.as_str() {
        "/images/create" => ImageCreate::decode(any.value.as_slice()).ok()?.name,
        "/images/update" => ImageUpdate::decode(any.value.as_slice()).ok()?.name,
        _ => return None,
    };
    Some(ImageEvent {
        namespace: envelope.namespace.clone(),
        name,
    })
}

impl BlobSource for Client {
    fn read(&mut self, blob: &BlobRef, what: &'static str, limit: i64) -> Result<Vec<u8>, ArtifactError> {
        let bytes = self.read_unverified(blob, what, limit)?;
        verify::verify(&blob.digest, blob.size, &bytes)?;
        Ok(bytes)
    }
}

fn status_message(status: &Status) -> String {
    let hint = match status.code() {
        Code::NotFound => " (not in containerd's metadata or content store)",
        _ => "",
    };
    format!("{}{hint}", status.message())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
