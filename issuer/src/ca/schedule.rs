//! Drives key rotation in a running issuer: the X.509 CA and the JWT
//! signing keys are checked on a fixed period, and each check prepares,
//! activates and prunes whatever [`rotation`](super::rotation) says is due.
//! The issuance stream re-reads the bundle, so nodes see a prepared key
//! within one sync interval.

use std::sync::Arc;
use std::time::Duration;

use super::{JwtAuthority, RotationReport, X509Authority};

/// How often a running issuer checks whether a key is due for rotation.
/// Rotation points sit at 1/2 and 5/6 of a lifetime of days, so a minute
/// of lateness is immaterial.
pub const ROTATION_CHECK_PERIOD: Duration = Duration::from_secs(60);

/// Checks both authorities every `period`, for ever, logging every key
/// prepared, activated or pruned. A failed check is logged and retried at
/// the next period; the current keys keep signing meanwhile.
pub async fn rotate_forever(x509: Arc<X509Authority>, jwt: Arc<JwtAuthority>, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let x509 = Arc::clone(&x509);
        let jwt = Arc::clone(&jwt);
        let checked = tokio::task::spawn_blocking(move || (x509.rotate(), jwt.rotate())).await;
        match checked {
            Ok((x509_report, jwt_report)) => {
                log("x509 CA", x509_report);
                log("JWT signing key", jwt_report);
            }
            Err(e) => tracing::error!(error = %e, "the key rotation task failed"),
        }
    }
}

fn log(what: &'static str, report: Result<RotationReport, super::CaError>) {
    match report {
        Ok(report) => {
            if let Some(id) = &report.prepared {
                tracing::info!(key = what, id = %id, "next key prepared and published in the bundle");
            }
            if let Some(id) = &report.activated {
                tracing::info!(key = what, id = %id, "next key activated: it signs from now on");
            }
            for id in &report.pruned {
                tracing::info!(key = what, id = %id, "expired key removed from the bundle");
            }
        }
        Err(e) => tracing::error!(key = what, error = %e, "key rotation failed; will retry"),
    }
}
