//! Live credentials: [`X509Source`] and [`JwtSource`] keep the workload's
//! current material in memory, updated from Workload API watch streams.
//!
//! * **Fail closed.** [`X509Source::new`] returns only once a first valid
//!   X.509 context arrived (or fails after [`SourceOptions::initial_timeout`]);
//!   there is never a moment without an identity to serve.
//! * **Last good material.** An update that fails validation is logged and
//!   ignored; the previous context stays in use.
//! * **Reconnects.** When the stream breaks, a background task reconnects
//!   with exponential backoff and jitter, keeping the last material
//!   meanwhile.
//! * **Change notification.** [`X509Source::updated`] is a
//!   [`tokio::sync::watch`] receiver that wakes on every new context.
//!
//! The background task stops when the source is dropped.
//!
//! ```no_run
//! # async fn example() -> Result<(), rootmark_sdk::source::SourceError> {
//! use rootmark_sdk::source::X509Source;
//!
//! let source = X509Source::new().await?;
//! println!("I am {}", source.svid().spiffe_id());
//! let mut updates = source.updated();
//! while updates.changed().await.is_ok() {
//!     println!("rotated: {:?}", source.svid().expiry());
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;

use crate::bundle::X509Bundle;
use crate::id::{SpiffeId, TrustDomain};
use crate::jwt::{JwtBundle, JwtBundleSet, JwtError, JwtSvid, validate_jwt_svid};
use crate::svid::X509Svid;
use crate::workload::{
    ClientError, WatchStream, WorkloadApiClient, X509Context, endpoint_from_env,
};

/// Default for [`SourceOptions::initial_timeout`].
pub const DEFAULT_INITIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a source could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The Workload API refused for good (bad address, invalid argument).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No valid material arrived in time.
    #[error("no valid material from the Workload API within {waited:?}{}", last_error_suffix(.last_error))]
    Timeout {
        /// How long the source waited.
        waited: Duration,
        /// The last failure seen while waiting, if any.
        last_error: Option<ClientError>,
    },
}

fn last_error_suffix(error: &Option<ClientError>) -> String {
    error
        .as_ref()
        .map(|e| format!(" (last error: {e})"))
        .unwrap_or_default()
}

/// How a source connects and retries.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    address: Option<String>,
    initial_timeout: Option<Duration>,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            address: None,
            initial_timeout: Some(DEFAULT_INITIAL_TIMEOUT),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }
}

impl SourceOptions {
    /// Defaults: address from `SPIFFE_ENDPOINT_SOCKET`, 30 s initial
    /// timeout, backoff from 200 ms to 30 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Workload API address (`unix:///path`) instead of the environment.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// How long `new` waits for the first valid material (`None`: forever).
    pub fn initial_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.initial_timeout = timeout;
        self
    }

    /// Reconnection backoff: starts at `min`, doubles up to `max`, each wait
    /// randomized to between half and all of it.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    fn resolve_address(&self) -> Result<String, ClientError> {
        match &self.address {
            Some(address) => Ok(address.clone()),
            None => endpoint_from_env(),
        }
    }
}

/// Exponential backoff with jitter.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(options: &SourceOptions) -> Self {
        Backoff {
            min: options.backoff_min,
            max: options.backoff_max,
            next: options.backoff_min,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next wait: uniformly between half and all of the current step.
    fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = step.saturating_mul(2).min(self.max);
        let mut random = [0u8; 4];
        // A failing RNG only loses the jitter.
        let _ = aws_lc_rs::rand::fill(&mut random);
        let fraction = f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX);
        step / 2 + step.div_f64(2.0).mul_f64(fraction)
    }
}

/// Connects and opens a watch stream.
async fn open<T, F, Fut>(
    address: &str,
    watch: &F,
) -> Result<(WorkloadApiClient, WatchStream<T>), ClientError>
where
    F: Fn(WorkloadApiClient) -> Fut,
    Fut: Future<Output = Result<WatchStream<T>, ClientError>>,
{
    let client = WorkloadApiClient::connect(address).await?;
    let stream = watch(client.clone()).await?;
    Ok((client, stream))
}

/// The first valid item of `stream`: invalid ones are logged and skipped.
async fn first_valid<T>(stream: &mut WatchStream<T>, what: &str) -> Result<T, ClientError> {
    loop {
        match stream.next().await {
            Some(Ok(value)) => return Ok(value),
            Some(Err(error @ ClientError::BadResponse { .. })) => {
                tracing::warn!(%error, "{what}: ignoring an invalid update from the Workload API");
            }
            Some(Err(error)) => return Err(error),
            None => return Err(ClientError::StreamEnded),
        }
    }
}

/// A started watch: the channel with the current value, the client and
/// the background task.
struct Started<T> {
    sender: watch::Sender<Arc<T>>,
    client: WorkloadApiClient,
    task: JoinHandle<()>,
}

/// Waits for a first valid value (fail closed), then keeps the channel
/// current from a background task.
async fn start<T, F, Fut>(
    options: SourceOptions,
    what: &'static str,
    watch_fn: F,
) -> Result<Started<T>, SourceError>
where
    T: PartialEq + Send + Sync + 'static,
    F: Fn(WorkloadApiClient) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<WatchStream<T>, ClientError>> + Send + 'static,
{
    let address = options.resolve_address()?;
    let started = Instant::now();
    let deadline = options.initial_timeout.map(|t| started + t);
    let mut backoff = Backoff::new(&options);
    let mut last_error = None;
    let (client, stream, first) = loop {
        let attempt = async {
            let (client, mut stream) = open(&address, &watch_fn).await?;
            let first = first_valid(&mut stream, what).await?;
            Ok::<_, ClientError>((client, stream, first))
        };
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(SourceError::Timeout {
                        waited: started.elapsed(),
                        last_error,
                    });
                }
            },
            None => attempt.await,
        };
        match result {
            Ok(ready) => break ready,
            Err(error) if !error.is_retryable() => return Err(SourceError::Client(error)),
            Err(error) => {
                tracing::info!(%error, "{what}: waiting for the Workload API");
                last_error = Some(error);
                let wake = Instant::now() + backoff.next_delay();
                if let Some(deadline) = deadline
                    && wake >= deadline
                {
                    tokio::time::sleep_until(deadline).await;
                    return Err(SourceError::Timeout {
                        waited: started.elapsed(),
                        last_error,
                    });
                }
                tokio::time::sleep_until(wake).await;
            }
        }
    };
    let (sender, _) = watch::channel(Arc::new(first));
    let task = tokio::spawn(keep_current(
        sender.clone(),
        address,
        stream,
        watch_fn,
        options,
        what,
    ));
    Ok(Started {
        sender,
        client,
        task,
    })
}

/// Follows the stream, reconnecting as needed, until aborted.
async fn keep_current<T, F, Fut>(
    sender: watch::Sender<Arc<T>>,
    address: String,
    mut stream: WatchStream<T>,
    watch_fn: F,
    options: SourceOptions,
    what: &'static str,
) where
    T: PartialEq + Send + Sync + 'static,
    F: Fn(WorkloadApiClient) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<WatchStream<T>, ClientError>> + Send + 'static,
{
    let mut backoff = Backoff::new(&options);
    loop {
        loop {
            match stream.next().await {
                Some(Ok(value)) => {
                    backoff.reset();
                    sender.send_if_modified(|current| {
                        if **current == value {
                            false
                        } else {
                            *current = Arc::new(value);
                            true
                        }
                    });
                }
                Some(Err(error @ ClientError::BadResponse { .. })) => {
                    tracing::warn!(%error, "{what}: keeping the last good material");
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "{what}: Workload API stream failed; reconnecting");
                    break;
                }
                None => {
                    tracing::warn!("{what}: Workload API stream ended; reconnecting");
                    break;
                }
            }
        }
        stream = loop {
            tokio::time::sleep(backoff.next_delay()).await;
            match open(&address, &watch_fn).await {
                Ok((_, stream)) => break stream,
                Err(error) => {
                    tracing::warn!(%error, "{what}: reconnecting to the Workload API failed");
                }
            }
        };
    }
}

/// Aborts the background task when the source goes away.
#[derive(Debug)]
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The workload's current X.509 context (SVIDs and bundles), kept up to
/// date from `FetchX509SVID`.
#[derive(Debug)]
pub struct X509Source {
    sender: watch::Sender<Arc<X509Context>>,
    _task: Option<TaskGuard>,
}

impl X509Source {
    /// Connects through `SPIFFE_ENDPOINT_SOCKET` and waits for the first
    /// valid context (at most [`DEFAULT_INITIAL_TIMEOUT`]).
    ///
    /// # Errors
    /// [`SourceError::Timeout`] when no valid context arrived in time,
    /// [`SourceError::Client`] for an unusable address.
    pub async fn new() -> Result<Self, SourceError> {
        Self::with_options(SourceOptions::default()).await
    }

    /// As [`X509Source::new`], with `options`.
    ///
    /// # Errors
    /// As [`X509Source::new`].
    pub async fn with_options(options: SourceOptions) -> Result<Self, SourceError> {
        let started = start(
            options,
            "X509Source",
            |client: WorkloadApiClient| async move { client.watch_x509_context().await },
        )
        .await?;
        Ok(X509Source {
            sender: started.sender,
            _task: Some(TaskGuard(started.task)),
        })
    }

    /// A source that always serves `context` (no Workload API): for tests
    /// and for applications that obtain credentials otherwise.
    pub fn fixed(context: X509Context) -> Self {
        let (sender, _) = watch::channel(Arc::new(context));
        X509Source {
            sender,
            _task: None,
        }
    }

    /// Replaces the current context, as a stream update would (only
    /// meaningful for [`X509Source::fixed`] sources).
    pub fn set_context(&self, context: X509Context) {
        self.sender.send_replace(Arc::new(context));
    }

    /// The current context.
    pub fn context(&self) -> Arc<X509Context> {
        Arc::clone(&self.sender.borrow())
    }

    /// The current default SVID.
    pub fn svid(&self) -> X509Svid {
        self.sender.borrow().default_svid().clone()
    }

    /// The current SVID for `id`, if this workload has one.
    pub fn svid_for(&self, id: &SpiffeId) -> Option<X509Svid> {
        self.sender
            .borrow()
            .svids()
            .iter()
            .find(|svid| svid.spiffe_id() == id)
            .cloned()
    }

    /// The current X.509 bundle of `trust_domain`.
    pub fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<X509Bundle> {
        self.sender.borrow().bundles().get(trust_domain).cloned()
    }

    /// A receiver that sees every new context.
    pub fn updated(&self) -> watch::Receiver<Arc<X509Context>> {
        self.sender.subscribe()
    }
}

/// The current JWT bundles, kept up to date from `FetchJWTBundles`, and
/// JWT-SVIDs fetched on demand.
#[derive(Debug)]
pub struct JwtSource {
    sender: watch::Sender<Arc<JwtBundleSet>>,
    client: Option<WorkloadApiClient>,
    _task: Option<TaskGuard>,
}

impl JwtSource {
    /// Connects through `SPIFFE_ENDPOINT_SOCKET` and waits for the first
    /// valid set of JWT bundles.
    ///
    /// # Errors
    /// As [`X509Source::new`].
    pub async fn new() -> Result<Self, SourceError> {
        Self::with_options(SourceOptions::default()).await
    }

    /// As [`JwtSource::new`], with `options`.
    ///
    /// # Errors
    /// As [`X509Source::new`].
    pub async fn with_options(options: SourceOptions) -> Result<Self, SourceError> {
        let started = start(
            options,
            "JwtSource",
            |client: WorkloadApiClient| async move { client.watch_jwt_bundles().await },
        )
        .await?;
        Ok(JwtSource {
            sender: started.sender,
            client: Some(started.client),
            _task: Some(TaskGuard(started.task)),
        })
    }

    /// A source that always serves `bundles` and cannot fetch JWT-SVIDs.
    pub fn fixed(bundles: JwtBundleSet) -> Self {
        let (sender, _) = watch::channel(Arc::new(bundles));
        JwtSource {
            sender,
            client: None,
            _task: None,
        }
    }

    /// The current bundles.
    pub fn bundles(&self) -> Arc<JwtBundleSet> {
        Arc::clone(&self.sender.borrow())
    }

    /// The current JWT bundle of `trust_domain`.
    pub fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<JwtBundle> {
        self.sender.borrow().get(trust_domain).cloned()
    }

    /// A receiver that sees every new set of bundles.
    pub fn updated(&self) -> watch::Receiver<Arc<JwtBundleSet>> {
        self.sender.subscribe()
    }

    /// Validates `token` for `audience` now, locally, against the current
    /// bundles.
    ///
    /// # Errors
    /// The [`JwtError`] naming the failed check.
    pub fn validate(&self, token: &str, audience: &str) -> Result<JwtSvid, JwtError> {
        let bundles = self.bundles();
        validate_jwt_svid(token, &*bundles, audience, std::time::SystemTime::now())
    }

    /// Fetches a JWT-SVID for `audience` from the Workload API.
    ///
    /// # Errors
    /// As [`WorkloadApiClient::fetch_jwt_svid`];
    /// [`ClientError::Unavailable`] for a [`JwtSource::fixed`] source.
    pub async fn fetch_jwt_svid<S: AsRef<str>>(
        &self,
        audience: &[S],
        spiffe_id: Option<&SpiffeId>,
    ) -> Result<JwtSvid, ClientError> {
        match &self.client {
            Some(client) => client.fetch_jwt_svid(audience, spiffe_id).await,
            None => Err(ClientError::Unavailable {
                message: "this JwtSource has no Workload API connection".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
