//! The admin socket server: authorisation by `SO_PEERCRED`, requests
//! executed through the datastore as [`Actor::Admin`].

use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rootmark_sdk::id::SpiffeId;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::protocol::{EntrySpec, MAX_REQUEST_BYTES, Request, Response};
use crate::ca::{CaError, DEFAULT_REFRESH_HINT, JwtAuthority, TrustBundle, X509Authority};
use crate::store::{
    Actor, AttestationQuery, AuditEvent, Datastore, NewEntry, Node, StoreError, limits,
};

/// How long a connection may stay idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most attestations `attestation list` returns by default.
const DEFAULT_ATTESTATION_LIMIT: u32 = 20;

/// Why the admin socket or a request failed. The text is what the admin
/// sees, so each variant says what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The socket (or its directory) could not be set up.
    #[error("admin socket {path}: cannot {what}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another process is serving the socket.
    #[error(
        "admin socket {0} is in use by another running issuer; stop it or set a different admin_socket"
    )]
    InUse(PathBuf),
    /// Something other than a socket is at the path.
    #[error(
        "admin socket {0} exists and is not a socket; remove it or set a different admin_socket"
    )]
    NotASocket(PathBuf),
    /// The caller is not root or the admin uid.
    #[error(
        "permission denied: uid {uid} may not use the admin socket (only root{allowed}); run the \
         command as root or set admin_uid in the issuer config"
    )]
    Denied {
        /// The caller's uid.
        uid: u32,
        /// `" and uid N"` when an admin uid is configured.
        allowed: String,
    },
    /// The request is malformed or names something invalid.
    #[error("{0}")]
    Invalid(String),
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The datastore refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA failed (bundle rendering).
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// What the admin API works on.
pub struct AdminService {
    store: Arc<dyn Datastore>,
    x509: Arc<X509Authority>,
    jwt: Arc<JwtAuthority>,
    admin_uid: Option<u32>,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService")
            .field("admin_uid", &self.admin_uid)
            .finish_non_exhaustive()
    }
}

impl AdminService {
    /// An admin API over `store` and the CAs, serving root and `admin_uid`.
    pub fn new(
        store: Arc<dyn Datastore>,
        x509: Arc<X509Authority>,
        jwt: Arc<JwtAuthority>,
        admin_uid: Option<u32>,
    ) -> Self {
        AdminService {
            store,
            x509,
            jwt,
            admin_uid,
        }
    }

    /// Whether `uid` may use the admin API.
    pub fn is_authorised(&self, uid: u32) -> bool {
        uid == 0 || Some(uid) == self.admin_uid
    }

    /// The refusal for `uid`.
    fn denied(&self, uid: u32) -> AdminError {
        AdminError::Denied {
            uid,
            allowed: self
                .admin_uid
                .filter(|&u| u != 0)
                .map(|u| format!(" and uid {u}"))
                .unwrap_or_default(),
        }
    }

    /// Records a refused call as an `admin.denied` audit event.
    ///
    /// # Errors
    /// [`StoreError`] when the event cannot be written.
    pub fn audit_denied(
        &self,
        uid: u32,
        pid: Option<i32>,
        op: Option<&str>,
    ) -> Result<(), StoreError> {
        let payload = json!({ "uid": uid, "pid": pid, "op": op });
        self.store.append_event(&AuditEvent {
            kind: "admin.denied",
            actor: Actor::Admin { uid },
            subject: op.unwrap_or(""),
            payload: &payload,
        })?;
        Ok(())
    }

    /// Executes one request for `uid` (blocking: call from
    /// `spawn_blocking`). Refuses callers that are not authorised (the
    /// caller records the `admin.denied` event).
    ///
    /// # Errors
    /// [`AdminError`] saying what is wrong.
    pub fn handle(&self, request: &Request, uid: u32) -> Result<Value, AdminError> {
        if !self.is_authorised(uid) {
            return Err(self.denied(uid));
        }
        let actor = Actor::Admin { uid };
        match request {
            Request::EntryCreate { entry } => {
                let new = self.new_entry(entry)?;
                Ok(to_json(&self.store.create_entry(&new, &actor)?))
            }
            Request::EntryList => Ok(to_json(&self.store.list_entries()?)),
            Request::EntryShow { id } => Ok(to_json(&self.entry(id)?)),
            Request::EntryDelete { id } => {
                self.entry(id)?;
                match self.store.delete_entry(id, &actor) {
                    Ok(entry) => Ok(to_json(&entry)),
                    Err(StoreError::NotFound { .. }) => Err(no_entry(id)),
                    Err(e) => Err(e.into()),
                }
            }
            Request::NodeList => Ok(to_json(&self.store.list_nodes()?)),
            Request::NodeShow { id } => {
                let node = self.node(id)?;
                let ban = self.store.ban(&node.ek_sha256)?;
                let mut value = to_json(&node);
                if let Value::Object(map) = &mut value {
                    map.insert("ban".into(), to_json(&ban));
                }
                Ok(value)
            }
            Request::NodeBan { id, reason } => {
                let reason = reason.trim();
                if reason.is_empty() {
                    return Err(AdminError::Invalid(
                        "a ban needs a reason: give --reason TEXT".into(),
                    ));
                }
                let ek = self.ek_of(id, true)?;
                Ok(to_json(&self.store.ban_node(&ek, reason, &actor)?))
            }
            Request::NodeUnban { id } => {
                let ek = self.ek_of(id, true)?;
                match self.store.unban_node(&ek, &actor) {
                    Ok(ban) => Ok(to_json(&ban)),
                    Err(StoreError::NotFound { .. }) => Err(AdminError::NotFound(format!(
                        "the TPM with EK hash {ek} is not banned"
                    ))),
                    Err(e) => Err(e.into()),
                }
            }
            Request::NodeEvict { id } => {
                let node = self.node(id)?;
                Ok(to_json(&self.store.evict_node(&node.spiffe_id, &actor)?))
            }
            Request::AttestationList { node, limit } => {
                let ek_sha256 = match node {
                    Some(id) => Some(self.node(id)?.ek_sha256),
                    None => None,
                };
                let query = AttestationQuery {
                    ek_sha256,
                    limit: limit
                        .unwrap_or(DEFAULT_ATTESTATION_LIMIT)
                        .clamp(1, limits::MAX_PAGE),
                    ..AttestationQuery::default()
                };
                Ok(to_json(&self.store.list_attestations(&query)?))
            }
            Request::AttestationShow { id } => self.attestation_show(*id),
            Request::BundleShow => self.bundle(),
        }
    }

    fn new_entry(&self, spec: &EntrySpec) -> Result<NewEntry, AdminError> {
        let trust_domain = self.x509.trust_domain();
        let id = SpiffeId::parse(&spec.spiffe_id)
            .map_err(|e| AdminError::Invalid(format!("--spiffe-id {:?}: {e}", spec.spiffe_id)))?;
        if !id.is_member_of(trust_domain) {
            return Err(AdminError::Invalid(format!(
                "--spiffe-id {id} is not in this issuer's trust domain {}; use spiffe://{}/…",
                trust_domain.as_str(),
                trust_domain.as_str()
            )));
        }
        if id.is_trust_domain_id() {
            return Err(AdminError::Invalid(format!(
                "--spiffe-id {id} has no path; workload IDs look like spiffe://{}/service",
                trust_domain.as_str()
            )));
        }
        if spec.selectors.is_empty() {
            return Err(AdminError::Invalid(
                "an entry needs at least one workload selector: give --selector TYPE:VALUE (e.g. unix:uid:1000)"
                    .into(),
            ));
        }
        if spec.node_selectors.is_empty() && spec.node_id.is_none() {
            return Err(AdminError::Invalid(
                "an entry needs --node-id ID or at least one --node-selector TYPE:VALUE \
                 (e.g. tpm:policy:prod); without either it would match every node"
                    .into(),
            ));
        }
        for selector in spec.selectors.iter().chain(&spec.node_selectors) {
            check_selector(selector)?;
        }
        if let Some(node_id) = &spec.node_id {
            let node = SpiffeId::parse(node_id)
                .map_err(|e| AdminError::Invalid(format!("--node-id {node_id:?}: {e}")))?;
            if !node.is_member_of(trust_domain) {
                return Err(AdminError::Invalid(format!(
                    "--node-id {node} is not in this issuer's trust domain {}",
                    trust_domain.as_str()
                )));
            }
        }
        Ok(NewEntry {
            spiffe_id: id.as_str().to_owned(),
            node_selectors: spec.node_selectors.clone(),
            node_id: spec.node_id.clone(),
            selectors: spec.selectors.clone(),
            x509_ttl_s: spec.x509_ttl_s,
            jwt_ttl_s: spec.jwt_ttl_s,
            dns_names: spec.dns_names.clone(),
            hint: spec.hint.clone(),
            admin: spec.admin,
        })
    }

    fn entry(&self, id: &str) -> Result<crate::store::Entry, AdminError> {
        self.store.entry(id)?.ok_or_else(|| no_entry(id))
    }

    /// The node `id` names (SPIFFE ID or EK hash).
    fn node(&self, id: &str) -> Result<Node, AdminError> {
        let found = if id.starts_with("spiffe://") {
            self.store.node(id)?
        } else if let Some(ek) = ek_hash(id) {
            self.store.node_by_ek(&ek)?
        } else {
            return Err(not_a_node_id(id));
        };
        found.ok_or_else(|| {
            AdminError::NotFound(format!(
                "no node with ID {id}; `rootmark-issuer node list` shows the nodes that have attested"
            ))
        })
    }

    /// The EK hash `id` names: a node's (which must exist) or an EK hash
    /// given directly (which need not have attested when `any_ek`).
    fn ek_of(&self, id: &str, any_ek: bool) -> Result<String, AdminError> {
        match ek_hash(id) {
            Some(ek) if any_ek => Ok(ek),
            _ => Ok(self.node(id)?.ek_sha256),
        }
    }

    fn attestation_show(&self, id: i64) -> Result<Value, AdminError> {
        let attestation = self.store.attestation(id)?.ok_or_else(|| {
            AdminError::NotFound(format!(
                "no attestation with ID {id}; `rootmark-issuer attestation list` shows recent ones"
            ))
        })?;
        let previous = match &attestation.ek_sha256 {
            Some(ek) => self
                .store
                .list_attestations(&AttestationQuery {
                    ek_sha256: Some(ek.clone()),
                    accepted: Some(true),
                    before_id: Some(id),
                    limit: 1,
                })?
                .into_iter()
                .next(),
            None => None,
        };
        let drift = previous.as_ref().map(|prev| {
            let mut changes = Vec::new();
            let banks: std::collections::BTreeSet<&String> =
                prev.pcrs.keys().chain(attestation.pcrs.keys()).collect();
            for bank in banks {
                let old = prev.pcrs.get(bank);
                let new = attestation.pcrs.get(bank);
                let indices: std::collections::BTreeSet<u32> = old
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .chain(new.into_iter().flat_map(|m| m.keys()))
                    .copied()
                    .collect();
                for pcr in indices {
                    let o = old.and_then(|m| m.get(&pcr));
                    let n = new.and_then(|m| m.get(&pcr));
                    if o != n {
                        changes.push(json!({ "bank": bank, "pcr": pcr, "old": o, "new": n }));
                    }
                }
            }
            changes
        });
        Ok(json!({
            "attestation": attestation,
            "previous_accepted_id": previous.map(|p| p.id),
            "drift": drift,
        }))
    }

    fn bundle(&self) -> Result<Value, AdminError> {
        let bundle = TrustBundle::from_authorities(&self.x509, &self.jwt, 0, DEFAULT_REFRESH_HINT);
        let pems: Vec<String> = bundle.x509_authorities.iter().map(|der| pem(der)).collect();
        Ok(json!({
            "trust_domain": bundle.trust_domain.as_str(),
            "x509_authorities": pems,
            "jwks": bundle.to_jwks()?,
        }))
    }
}

/// A PEM `CERTIFICATE` block.
fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| json!({ "serialization_error": e.to_string() }))
}

fn no_entry(id: &str) -> AdminError {
    AdminError::NotFound(format!(
        "no entry with ID {id}; `rootmark-issuer entry list` shows the entries"
    ))
}

fn not_a_node_id(id: &str) -> AdminError {
    AdminError::Invalid(format!(
        "{id:?} is neither a node SPIFFE ID (spiffe://<trust domain>/rootmark/node/<EK hash>) \
         nor an EK hash (64 hex digits)"
    ))
}

/// `id` as a lowercase EK hash, if it is 64 hex digits.
fn ek_hash(id: &str) -> Option<String> {
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// Checks that a selector is `TYPE:VALUE` with both parts non-empty.
fn check_selector(selector: &str) -> Result<(), AdminError> {
    match selector.split_once(':') {
        Some((kind, value)) if !kind.is_empty() && !value.is_empty() => Ok(()),
        _ => Err(AdminError::Invalid(format!(
            "selector '{selector}' must be TYPE:VALUE (e.g. unix:uid:1000)"
        ))),
    }
}

/// The bound admin socket. Dropping it removes the socket file.
#[derive(Debug)]
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    /// Binds the socket at `path` (must run inside a tokio runtime): creates
    /// a missing parent directory 0750, replaces a stale socket file (one
    /// nobody listens on), makes the socket 0660 and, with `owner`, chowns
    /// it to that uid.
    ///
    /// # Errors
    /// [`AdminError`] naming the path and what failed.
    pub fn bind(path: &Path, owner: Option<u32>) -> Result<Self, AdminError> {
        let err = |what, source| AdminError::Socket {
            path: path.to_owned(),
            what,
            source,
        };
        if let Some(parent) = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && !p.exists())
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(parent)
                .map_err(|e| err("create its directory", e))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(AdminError::InUse(path.to_owned()));
                }
                std::fs::remove_file(path).map_err(|e| err("remove the stale socket", e))?;
            }
            Ok(_) => return Err(AdminError::NotASocket(path.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("inspect", e)),
        }
        let listener = UnixListener::bind(path).map_err(|e| err("bind", e))?;
        let socket = AdminSocket {
            listener,
            path: path.to_owned(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| err("set mode 0660 on", e))?;
        if let Some(uid) = owner.filter(|&u| u != 0) {
            std::os::unix::fs::chown(path, Some(uid), None)
                .map_err(|e| err("give the admin uid ownership of", e))?;
        }
        Ok(socket)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves connections for ever (each on its own task). Drop the future
    /// (e.g. in `tokio::select!` with a shutdown signal) to stop; the
    /// socket file is removed then.
    pub async fn serve(self, service: Arc<AdminService>) {
        tracing::info!(socket = %self.path.display(), "admin socket listening");
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let service = Arc::clone(&service);
                    tokio::spawn(async move {
                        if let Err(e) = connection(service, stream).await {
                            tracing::debug!(error = %e, "admin connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        // Best effort: a stale socket is replaced at the next start anyway.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one line of at most [`MAX_REQUEST_BYTES`]; `None` at end of stream.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<Result<Vec<u8>, String>>> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX);
    let n = tokio::time::timeout(
        IDLE_TIMEOUT,
        (&mut *reader).take(limit).read_until(b'\n', &mut line),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle admin connection"))??;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') && line.len() >= MAX_REQUEST_BYTES {
        return Ok(Some(Err(format!(
            "request longer than {MAX_REQUEST_BYTES} bytes"
        ))));
    }
    Ok(Some(Ok(line)))
}

async fn connection(service: Arc<AdminService>, stream: UnixStream) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let uid = cred.uid();
    let pid = cred.pid();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if !service.is_authorised(uid) {
        // Read the first request (if any) to name the refused operation.
        let op = match read_line(&mut reader).await {
            Ok(Some(Ok(line))) => serde_json::from_slice::<Request>(&line)
                .ok()
                .map(|r| r.op()),
            _ => None,
        };
        tracing::warn!(uid, ?pid, op, "admin request refused: uid not allowed");
        let svc = Arc::clone(&service);
        let audited = tokio::task::spawn_blocking(move || svc.audit_denied(uid, pid, op)).await;
        match audited {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot audit a refused admin request"),
            Err(e) => tracing::error!(error = %e, "admin audit task failed"),
        }
        let response = Response::failure(service.denied(uid).to_string());
        return send(&mut write, &response).await;
    }
    while let Some(line) = read_line(&mut reader).await? {
        let response = match line {
            Err(message) => {
                let response = Response::failure(message);
                send(&mut write, &response).await?;
                return Ok(());
            }
            Ok(line) => match serde_json::from_slice::<Request>(&line) {
                Err(e) => Response::failure(format!(
                    "malformed admin request: {e}; send one JSON object per line such as {{\"op\":\"entry_list\"}}"
                )),
                Ok(request) => {
                    let svc = Arc::clone(&service);
                    let op = request.op();
                    match tokio::task::spawn_blocking(move || svc.handle(&request, uid)).await {
                        Ok(Ok(result)) => {
                            tracing::info!(uid, op, "admin request served");
                            Response::success(result)
                        }
                        Ok(Err(e)) => {
                            tracing::info!(uid, op, error = %e, "admin request failed");
                            Response::failure(e.to_string())
                        }
                        Err(e) => Response::failure(format!("internal error: {e}")),
                    }
                }
            },
        };
        send(&mut write, &response).await?;
    }
    Ok(())
}

async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.flush().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use std::collections::BTreeMap;

    use rootmark_sdk::id::TrustDomain;

    use super::*;
    use crate::ca::{JwtConfig, SystemClock, X509CaConfig};
    use crate::policy::PolicyResults;
    use crate::store::{NewAttestation, SqliteStore};
    use crate::verdict::Verdict;

    fn verdict(ek: &str, boot: u32) -> Verdict {
        let bank: BTreeMap<u32, String> = [0u32, 7]
            .into_iter()
            .map(|i| (i, format!("{:064x}", boot * 100 + i)))
            .collect();
        Verdict {
            accepted: true,
            failed_check: None,
            reason: None,
            ek_sha256: Some(ek.to_owned()),
            ek_manufacturer: None,
            ek_trust: Some("allow-list".into()),
            ak_name: None,
            nonce: None,
            pcrs: BTreeMap::from([("sha256".to_owned(), bank)]),
            event_log_sha256: None,
            secure_boot: Some(true),
            clock: None,
            policies: PolicyResults {
                passed: vec![],
                failed: vec![],
            },
            selectors: vec![format!("tpm:ek-sha256:{ek}")],
        }
    }

    fn service(dir: &Path, admin_uid: Option<u32>) -> (AdminService, Arc<dyn Datastore>) {
        let td = TrustDomain::parse("example.org").unwrap();
        let store: Arc<dyn Datastore> = Arc::new(SqliteStore::open_in_dir(dir).unwrap());
        let x509 =
            X509Authority::new(X509CaConfig::new(td.clone()), Arc::new(SystemClock)).unwrap();
        let jwt = JwtAuthority::new(JwtConfig::new(td), Arc::new(SystemClock)).unwrap();
        let svc = AdminService::new(Arc::clone(&store), Arc::new(x509), Arc::new(jwt), admin_uid);
        (svc, store)
    }

    #[test]
    fn drift_names_changed_pcrs_old_to_new() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, store) = service(dir.path(), None);
        let ek = "cd".repeat(32);
        let node = format!("spiffe://example.org/rootmark/node/{ek}");
        let first = verdict(&ek, 1);
        let mut second = verdict(&ek, 1);
        second
            .pcrs
            .get_mut("sha256")
            .unwrap()
            .insert(7, "ff".repeat(32));
        let a1 = store
            .record_attestation(&NewAttestation::new(&first).spiffe_id(&node))
            .unwrap();
        let a2 = store
            .record_attestation(&NewAttestation::new(&second).spiffe_id(&node))
            .unwrap();
        let shown = svc
            .handle(
                &Request::AttestationShow {
                    id: a2.attestation_id,
                },
                0,
            )
            .unwrap();
        assert_eq!(shown["previous_accepted_id"], a1.attestation_id);
        assert_eq!(
            shown["drift"],
            json!([{ "bank": "sha256", "pcr": 7, "old": format!("{:064x}", 107), "new": "ff".repeat(32) }])
        );
        let text = super::super::render::attestation(&shown);
        assert!(text.contains("sha256 PCR 7:"), "{text}");
        let first_shown = svc
            .handle(
                &Request::AttestationShow {
                    id: a1.attestation_id,
                },
                0,
            )
            .unwrap();
        assert!(first_shown["drift"].is_null());

        // Nodes are found by SPIFFE ID or EK hash; evict and ban go through.
        let by_ek = svc
            .handle(&Request::NodeShow { id: ek.clone() }, 0)
            .unwrap();
        assert_eq!(by_ek["spiffe_id"], node.as_str());
        let evicted = svc
            .handle(&Request::NodeEvict { id: node.clone() }, 0)
            .unwrap();
        assert_eq!(evicted["evicted"], true);
        svc.handle(
            &Request::NodeBan {
                id: node.clone(),
                reason: "stolen".into(),
            },
            0,
        )
        .unwrap();
        let shown = svc
            .handle(&Request::NodeShow { id: node.clone() }, 0)
            .unwrap();
        assert_eq!(shown["banned"], true);
        assert_eq!(shown["ban"]["reason"], "stolen");
        let listed = svc
            .handle(
                &Request::AttestationList {
                    node: Some(node),
                    limit: Some(1),
                },
                0,
            )
            .unwrap();
        assert_eq!(listed.as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn only_root_and_the_admin_uid_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, _) = service(dir.path(), Some(1000));
        assert!(svc.is_authorised(0) && svc.is_authorised(1000) && !svc.is_authorised(1001));
        let err = svc.handle(&Request::EntryList, 1001).unwrap_err();
        assert!(err.to_string().contains("uid 1001") && err.to_string().contains("uid 1000"));
        assert!(svc.handle(&Request::EntryList, 1000).is_ok());
        let err = svc
            .handle(&Request::NodeShow { id: "web".into() }, 0)
            .unwrap_err();
        assert!(
            err.to_string().contains("neither a node SPIFFE ID"),
            "{err}"
        );
        let err = svc
            .handle(
                &Request::EntryCreate {
                    entry: EntrySpec {
                        spiffe_id: "spiffe://other.org/web".into(),
                        selectors: vec!["unix:uid:1".into()],
                        node_selectors: vec!["tpm:policy:prod".into()],
                        ..EntrySpec::default()
                    },
                },
                0,
            )
            .unwrap_err();
        assert!(err.to_string().contains("trust domain"), "{err}");
    }

    #[test]
    fn requests_round_trip_as_json_lines() {
        let request: Request =
            serde_json::from_str(r#"{"op":"node_ban","id":"x","reason":"r"}"#).unwrap();
        assert_eq!(
            request,
            Request::NodeBan {
                id: "x".into(),
                reason: "r".into()
            }
        );
        let text = serde_json::to_string(&Request::EntryList).unwrap();
        assert_eq!(text, r#"{"op":"entry_list"}"#);
    }
}
