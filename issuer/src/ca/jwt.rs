//! The JWT authority: ES256 signing keys with a `kid`, their rotation and
//! persistence, and JWT-SVID minting.
//!
//! Tokens are compact JWS built here rather than through a JWT library:
//! the header of each key is encoded once, the claims are four fields, and
//! the signature is aws-lc-rs ECDSA P-256 in the fixed r‖s form JWS wants
//! (RFC 7518 §3.4).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use rootmark_sdk::id::{SpiffeId, TrustDomain};
use serde::{Deserialize, Serialize};

use super::bundle::JwtAuthorityKey;
use super::keys::{self, P256Key};
use super::rotation::{CaRotation, KeyState, KeyWindow, RotationSlot};
use super::{
    CaError, Clock, DEFAULT_CA_TTL, MAX_AUDIENCE_LEN, MAX_AUDIENCES, RotationReport,
    from_unix_seconds, random_bytes, unix_seconds,
};

/// Name of the JWT key state file in the key directory.
const MANIFEST: &str = "jwt-keys.json";

/// Configuration of the JWT authority.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwtConfig {
    /// The trust domain: only its members get JWT-SVIDs.
    pub trust_domain: TrustDomain,
    /// Lifetime of each signing key; rotation happens at 1/2 and 5/6 of it.
    pub key_ttl: Duration,
}

impl JwtConfig {
    /// The defaults: keys live 24 hours.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            key_ttl: DEFAULT_CA_TTL,
        }
    }

    /// Sets the key lifetime.
    pub fn with_key_ttl(mut self, key_ttl: Duration) -> Self {
        self.key_ttl = key_ttl;
        self
    }
}

/// A JWT-SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwtSvid {
    /// The compact JWS (`header.claims.signature`).
    pub token: String,
    /// Its `sub`.
    pub spiffe_id: SpiffeId,
    /// Its `iat`.
    pub issued_at: SystemTime,
    /// Its `exp`: now + ttl, or the signing key's expiry if sooner.
    pub expires_at: SystemTime,
    /// The `kid` of the key that signed it.
    pub kid: String,
}

impl JwtSvid {
    /// The token.
    pub fn as_str(&self) -> &str {
        &self.token
    }
}

impl std::fmt::Display for JwtSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.token)
    }
}

/// One JWT signing key.
pub(crate) struct JwtSigner {
    kid: String,
    key: P256Key,
    window: KeyWindow,
    /// `base64url(header)` followed by `.`, ready to prefix the claims.
    header_prefix: String,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("kid", &self.kid)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    fn new(kid: String, key: P256Key, window: KeyWindow) -> Self {
        // serde_json writes struct fields in declaration order: a stable
        // header, the same for every token of this key.
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            kid: &'a str,
            typ: &'a str,
        }
        let header = serde_json::to_vec(&Header {
            alg: "ES256",
            kid: &kid,
            typ: "JWT",
        })
        .unwrap_or_default();
        let mut header_prefix = BASE64URL.encode(header);
        header_prefix.push('.');
        Self {
            kid,
            key,
            window,
            header_prefix,
        }
    }
}

type Rotation = CaRotation<Arc<JwtSigner>>;

/// The JWT authority. Cheap to share (`Arc`); minting takes `&self` and
/// runs concurrently with itself and with [`JwtAuthority::rotate`].
pub struct JwtAuthority {
    config: JwtConfig,
    clock: Arc<dyn Clock>,
    dir: Option<PathBuf>,
    state: RwLock<Arc<Rotation>>,
    rotating: Mutex<()>,
    initial: RotationReport,
}

impl std::fmt::Debug for JwtAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthority")
            .field("config", &self.config)
            .field("dir", &self.dir)
            .field("state", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl JwtAuthority {
    /// An authority kept in memory only, with its first key active.
    ///
    /// # Errors
    /// [`CaError`] for a bad configuration or when the key cannot be made.
    pub fn new(config: JwtConfig, clock: Arc<dyn Clock>) -> Result<Self, CaError> {
        validate(&config)?;
        let mut authority = Self::empty(config, clock, None);
        authority.initial = authority.rotate()?;
        Ok(authority)
    }

    /// An authority whose keys live in `dir` (created 0700 if missing),
    /// loaded from there and brought up to date; every later rotation is
    /// saved before it takes effect.
    ///
    /// # Errors
    /// [`CaError`] naming the file or field that is wrong.
    pub fn open(config: JwtConfig, dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, CaError> {
        validate(&config)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CaError::io(dir, "create directory", e))?;
        let mut authority = Self::empty(config, clock, Some(dir.to_path_buf()));
        let rotation = authority.load(dir)?;
        *authority
            .state
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(rotation);
        authority.initial = authority.rotate()?;
        Ok(authority)
    }

    fn empty(config: JwtConfig, clock: Arc<dyn Clock>, dir: Option<PathBuf>) -> Self {
        Self {
            config,
            clock,
            dir,
            state: RwLock::new(Arc::new(Rotation::new())),
            rotating: Mutex::new(()),
            initial: RotationReport::default(),
        }
    }

    /// What construction changed.
    pub fn initial_report(&self) -> &RotationReport {
        &self.initial
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.config.trust_domain
    }

    fn snapshot(&self) -> Arc<Rotation> {
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Brings the keys up to date with the clock (see
    /// [`super::X509Authority::rotate`]); report ids are `kid`s.
    ///
    /// # Errors
    /// [`CaError`] when a key cannot be made or saved; the authority then
    /// keeps its previous state.
    pub fn rotate(&self) -> Result<RotationReport, CaError> {
        let _guard = self.rotating.lock().unwrap_or_else(PoisonError::into_inner);
        let now = unix_seconds(self.clock.now());
        let mut rotation = (*self.snapshot()).clone();
        let outcome = rotation.advance(now, |now| {
            let kid = BASE64URL.encode(random_bytes::<24>()?);
            let key = P256Key::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?;
            if let Some(dir) = &self.dir {
                keys::write_key_file(&key_path(dir, &kid), &key.pkcs8)?;
            }
            let window = KeyWindow {
                not_before: now,
                not_after: now.saturating_add(self.config.key_ttl.as_secs()),
            };
            Ok::<_, CaError>((Arc::new(JwtSigner::new(kid, key, window)), window))
        })?;
        let report = RotationReport {
            prepared: outcome.prepared.as_ref().map(|s| s.kid.clone()),
            activated: outcome.activated.as_ref().map(|s| s.kid.clone()),
            pruned: outcome.pruned.iter().map(|s| s.kid.clone()).collect(),
            discarded: Vec::new(),
        };
        if report.is_empty() {
            return Ok(report);
        }
        self.save(&rotation)?;
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rotation);
        if let Some(dir) = &self.dir {
            for kid in &report.pruned {
                let _ = fs::remove_file(key_path(dir, kid));
            }
        }
        Ok(report)
    }

    /// When [`JwtAuthority::rotate`] next has something to do.
    pub fn next_rotation(&self) -> SystemTime {
        self.snapshot()
            .next_change()
            .map_or_else(|| self.clock.now(), from_unix_seconds)
    }

    /// The keys verifiers must accept now (the JWT part of the bundle):
    /// every unexpired key, the prepared one included.
    pub fn bundle(&self) -> Vec<JwtAuthorityKey> {
        let now = unix_seconds(self.clock.now());
        self.snapshot()
            .published(now)
            .map(|slot| JwtAuthorityKey {
                kid: slot.key.kid.clone(),
                public_key: slot.key.key.public_point().to_vec(),
                not_after: from_unix_seconds(slot.window.not_after),
            })
            .collect()
    }

    /// Every key with its state: (`kid`, state, window).
    pub fn keys(&self) -> Vec<(String, KeyState, KeyWindow)> {
        self.snapshot()
            .slots()
            .iter()
            .map(|slot| (slot.key.kid.clone(), slot.state, slot.window))
            .collect()
    }

    /// Mints a JWT-SVID: header `{"alg":"ES256","kid":…,"typ":"JWT"}`,
    /// claims `{"sub":…,"aud":…,"exp":…,"iat":…}` where `aud` is a string
    /// for one audience and an array for several, and `exp` is now + `ttl`
    /// or the key's expiry if sooner.
    ///
    /// # Errors
    /// [`CaError::InvalidInput`] naming `audience` (empty list, an empty or
    /// over-long entry, too many), `spiffe_id` (outside the trust domain,
    /// or the trust domain ID) or `ttl`; [`CaError::NoActiveKey`] /
    /// [`CaError::Expired`] when no key can sign now.
    pub fn mint_jwt_svid(
        &self,
        spiffe_id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
    ) -> Result<JwtSvid, CaError> {
        if !spiffe_id.is_member_of(&self.config.trust_domain) || spiffe_id.is_trust_domain_id() {
            return Err(CaError::invalid(
                "spiffe_id",
                format!(
                    "an ID in trust domain {} with a non-empty path",
                    self.config.trust_domain
                ),
                spiffe_id,
            ));
        }
        if audience.is_empty() {
            return Err(CaError::invalid(
                "audience",
                "at least one non-empty audience",
                "an empty list",
            ));
        }
        if audience.len() > MAX_AUDIENCES {
            return Err(CaError::invalid(
                "audience",
                format!("at most {MAX_AUDIENCES} audiences"),
                audience.len(),
            ));
        }
        for (i, aud) in audience.iter().enumerate() {
            if aud.is_empty() || aud.len() > MAX_AUDIENCE_LEN {
                return Err(CaError::invalid(
                    format!("audience[{i}]"),
                    format!("a non-empty string of at most {MAX_AUDIENCE_LEN} bytes"),
                    aud,
                ));
            }
        }
        if ttl.as_secs() == 0 {
            return Err(CaError::invalid(
                "ttl",
                "at least 1 second",
                format!("{ttl:?}"),
            ));
        }

        let now = unix_seconds(self.clock.now());
        let signer = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            match state.active() {
                Some(slot) => Arc::clone(&slot.key),
                None => {
                    return Err(CaError::NoActiveKey {
                        what: "JWT authority",
                    });
                }
            }
        };
        if signer.window.expired(now) {
            return Err(CaError::Expired {
                what: "JWT authority",
                not_after: signer.window.not_after,
                now,
            });
        }
        let exp = now
            .saturating_add(ttl.as_secs())
            .min(signer.window.not_after);

        // The claims JSON, written directly. The SPIFFE ID's characters
        // never need escaping; audiences go through serde_json.
        let mut claims = String::with_capacity(64 + spiffe_id.as_str().len() + 16 * audience.len());
        claims.push_str("{\"sub\":\"");
        claims.push_str(spiffe_id.as_str());
        claims.push_str("\",\"aud\":");
        let push_string = |claims: &mut String, s: &str| -> Result<(), CaError> {
            let quoted =
                serde_json::to_string(s).map_err(|_| CaError::crypto("encode audience"))?;
            claims.push_str(&quoted);
            Ok(())
        };
        if let [single] = audience {
            push_string(&mut claims, single)?;
        } else {
            claims.push('[');
            for (i, aud) in audience.iter().enumerate() {
                if i > 0 {
                    claims.push(',');
                }
                push_string(&mut claims, aud)?;
            }
            claims.push(']');
        }
        // Writing to a String cannot fail.
        let _ = write!(claims, ",\"exp\":{exp},\"iat\":{now}}}");

        let mut token =
            String::with_capacity(signer.header_prefix.len() + claims.len() * 4 / 3 + 100);
        token.push_str(&signer.header_prefix);
        BASE64URL.encode_string(claims.as_bytes(), &mut token);
        let signature = signer
            .key
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), token.as_bytes())
            .map_err(|_| CaError::crypto("sign JWT-SVID"))?;
        token.push('.');
        BASE64URL.encode_string(signature.as_ref(), &mut token);
        Ok(JwtSvid {
            token,
            spiffe_id: spiffe_id.clone(),
            issued_at: from_unix_seconds(now),
            expires_at: from_unix_seconds(exp),
            kid: signer.kid.clone(),
        })
    }

    fn load(&self, dir: &Path) -> Result<Rotation, CaError> {
        let path = dir.join(MANIFEST);
        let bad = |expected: &str, found: String| CaError::State {
            path: path.clone(),
            expected: expected.into(),
            found,
        };
        let Some(manifest) = keys::read_manifest::<JwtManifest>(
            &path,
            "JWT key state",
            self.config.trust_domain.as_str(),
        )?
        else {
            return Ok(Rotation::new());
        };
        let mut slots = Vec::new();
        for entry in manifest.keys {
            if !is_kid(&entry.kid) {
                return Err(bad(
                    "kids of 32 base64url characters",
                    format!("{:?}", entry.kid),
                ));
            }
            let path = key_path(dir, &entry.kid);
            let pkcs8 = keys::read_key_file(&path)?;
            let key =
                P256Key::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).map_err(|e| {
                    CaError::KeyFile {
                        path,
                        expected: "a PKCS#8 ECDSA P-256 key",
                        found: e.to_string(),
                    }
                })?;
            let window = KeyWindow {
                not_before: entry.not_before,
                not_after: entry.not_after,
            };
            slots.push(RotationSlot {
                key: Arc::new(JwtSigner::new(entry.kid, key, window)),
                window,
                state: entry.state,
            });
        }
        CaRotation::from_slots(slots).map_err(|e| bad("a valid rotation state", e.to_string()))
    }

    fn save(&self, rotation: &Rotation) -> Result<(), CaError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let manifest = JwtManifest {
            version: 1,
            trust_domain: self.config.trust_domain.as_str().to_owned(),
            keys: rotation
                .slots()
                .iter()
                .map(|slot| JwtManifestKey {
                    kid: slot.key.kid.clone(),
                    state: slot.state,
                    not_before: slot.window.not_before,
                    not_after: slot.window.not_after,
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| CaError::State {
            path: dir.join(MANIFEST),
            expected: "a serializable state".into(),
            found: e.to_string(),
        })?;
        keys::write_file_atomic(&dir.join(MANIFEST), &json, 0o600)
    }
}

fn validate(config: &JwtConfig) -> Result<(), CaError> {
    if config.key_ttl < Duration::from_secs(60) {
        return Err(CaError::invalid(
            "key_ttl",
            "at least 60 seconds",
            format!("{:?}", config.key_ttl),
        ));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtManifest {
    version: u32,
    trust_domain: String,
    keys: Vec<JwtManifestKey>,
}

impl keys::ManifestHeader for JwtManifest {
    fn version(&self) -> u32 {
        self.version
    }
    fn trust_domain(&self) -> &str {
        &self.trust_domain
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtManifestKey {
    kid: String,
    state: KeyState,
    /// Unix seconds.
    not_before: u64,
    /// Unix seconds.
    not_after: u64,
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("jwt-{kid}.key"))
}

/// Kids are generated as 32 base64url characters; anything else in a
/// manifest could make a key path escape the directory.
fn is_kid(kid: &str) -> bool {
    kid.len() == 32
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
