#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use serde_json::json;
use tower::ServiceExt as _;

use super::*;
use crate::TrustDomain;
use crate::jwt::{JwtBundle, JwtBundleSet, JwtPublicKey};

const KID: &str = "k1";
const AUD: &str = "billing";
const FRONTEND: &str = "spiffe://example.org/frontend";

struct Issuer {
    key: EcdsaKeyPair,
}

impl Issuer {
    fn new() -> Self {
        Issuer {
            key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        }
    }

    fn bundles(&self) -> JwtBundleSet {
        let mut bundle = JwtBundle::new(TrustDomain::parse("example.org").unwrap());
        bundle
            .add_authority(
                KID,
                JwtPublicKey::ec_p256(self.key.public_key().as_ref()).unwrap(),
            )
            .unwrap();
        let mut set = JwtBundleSet::new();
        set.insert(bundle);
        set
    }

    /// A JWT-SVID for `sub` and `aud` expiring `exp` (Unix seconds).
    fn token(&self, sub: &str, aud: &str, exp: u64) -> String {
        let header = json!({"alg": "ES256", "kid": KID, "typ": "JWT"});
        let claims = json!({"sub": sub, "aud": [aud], "exp": exp});
        let input = format!(
            "{}.{}",
            BASE64URL.encode(header.to_string()),
            BASE64URL.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", BASE64URL.encode(sig.as_ref()))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn headers(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for v in values {
        headers.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
    }
    headers
}

fn check(values: &[&str], issuer: &Issuer) -> Result<JwtSvid, BearerError> {
    authenticate_with(&headers(values), &issuer.bundles(), AUD, SystemTime::now())
}

#[test]
fn a_valid_bearer_token_authenticates_its_subject() {
    let issuer = Issuer::new();
    let token = issuer.token(FRONTEND, AUD, unix_now() + 300);
    for value in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER   {token}  "),
    ] {
        let svid = check(&[&value], &issuer).unwrap();
        assert_eq!(svid.spiffe_id().as_str(), FRONTEND);
        assert_eq!(svid.token(), token);
    }
}

#[test]
fn authenticate_reads_the_sources_current_bundles() {
    let issuer = Issuer::new();
    let source = JwtSource::fixed(issuer.bundles());
    let token = issuer.token(FRONTEND, AUD, unix_now() + 300);
    let svid = authenticate(&headers(&[&format!("Bearer {token}")]), &source, AUD).unwrap();
    assert_eq!(svid.spiffe_id().as_str(), FRONTEND);
    // Another issuer's key is unknown to the source.
    let stranger = Issuer::new().token(FRONTEND, AUD, unix_now() + 300);
    let error = authenticate(&headers(&[&format!("Bearer {stranger}")]), &source, AUD).unwrap_err();
    assert_eq!(error, BearerError::Invalid(JwtError::BadSignature));
}

#[test]
fn a_missing_header_asks_for_a_bearer_token() {
    let error = check(&[], &Issuer::new()).unwrap_err();
    assert_eq!(error, BearerError::MissingHeader);
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error.www_authenticate(), "Bearer");
    assert!(
        error.to_string().contains("Authorization: Bearer"),
        "{error}"
    );
}

#[test]
fn another_scheme_is_not_bearer() {
    let error = check(&["Basic dXNlcjpwYXNz"], &Issuer::new()).unwrap_err();
    assert_eq!(
        error,
        BearerError::NotBearer {
            scheme: "Basic".into()
        }
    );
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn malformed_headers_are_bad_requests() {
    let issuer = Issuer::new();
    for value in ["Bearer", "Bearer    ", "", "   ", "Bearer a b"] {
        let error = check(&[value], &issuer).unwrap_err();
        assert!(
            matches!(error, BearerError::MalformedHeader { .. }),
            "{value:?}: {error:?}"
        );
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.www_authenticate(), "Bearer error=\"invalid_request\"");
    }
    let mut non_ascii = HeaderMap::new();
    non_ascii.insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer \xe9t\xe9").unwrap(),
    );
    let error =
        authenticate_with(&non_ascii, &issuer.bundles(), AUD, SystemTime::now()).unwrap_err();
    assert!(
        matches!(error, BearerError::MalformedHeader { .. }),
        "{error:?}"
    );
}

#[test]
fn two_authorization_headers_are_refused() {
    let issuer = Issuer::new();
    let token = issuer.token(FRONTEND, AUD, unix_now() + 300);
    let value = format!("Bearer {token}");
    let error = check(&[&value, &value], &issuer).unwrap_err();
    assert_eq!(error, BearerError::MultipleHeaders { count: 2 });
    assert_eq!(error.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn invalid_tokens_name_the_failed_check() {
    let issuer = Issuer::new();
    let other_audience = issuer.token(FRONTEND, "someone-else", unix_now() + 300);
    let error = check(&[&format!("Bearer {other_audience}")], &issuer).unwrap_err();
    assert!(
        matches!(
            error,
            BearerError::Invalid(JwtError::AudienceMismatch { .. })
        ),
        "{error:?}"
    );
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error.www_authenticate(), "Bearer error=\"invalid_token\"");

    let expired = issuer.token(FRONTEND, AUD, unix_now() - 3600);
    let error = check(&[&format!("Bearer {expired}")], &issuer).unwrap_err();
    assert!(
        matches!(error, BearerError::Invalid(JwtError::Expired { .. })),
        "{error:?}"
    );

    let error = check(&["Bearer not.a.jwt"], &issuer).unwrap_err();
    assert!(
        matches!(error, BearerError::Invalid(JwtError::MalformedToken { .. })),
        "{error:?}"
    );
}

#[test]
fn an_empty_expected_audience_is_a_server_error() {
    let issuer = Issuer::new();
    let token = issuer.token(FRONTEND, AUD, unix_now() + 300);
    let error = authenticate_with(
        &headers(&[&format!("Bearer {token}")]),
        &issuer.bundles(),
        "",
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(error, BearerError::Invalid(JwtError::EmptyAudience));
    assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// An inner service that counts its calls and answers 200 with the
/// caller's SPIFFE ID from the extensions.
fn echo_service(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send> + Clone
{
    tower::service_fn(move |request: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let caller = request
            .extensions()
            .get::<JwtSvid>()
            .map(|svid| svid.spiffe_id().to_string())
            .unwrap_or_default();
        async move { Ok::<_, Infallible>(Response::new(caller)) }
    })
}

fn request(authorization: Option<&str>) -> Request<()> {
    let mut builder = Request::builder().uri("/pay");
    if let Some(value) = authorization {
        builder = builder.header(AUTHORIZATION, value);
    }
    builder.body(()).unwrap()
}

#[tokio::test]
async fn the_layer_admits_valid_callers_with_their_svid_in_the_extensions() {
    let issuer = Issuer::new();
    let source = Arc::new(JwtSource::fixed(issuer.bundles()));
    let calls = Arc::new(AtomicUsize::new(0));
    let service = BearerAuthLayer::new(source, AUD).layer(echo_service(Arc::clone(&calls)));
    let token = issuer.token(FRONTEND, AUD, unix_now() + 300);

    let response = service
        .clone()
        .oneshot(request(Some(&format!("Bearer {token}"))))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), FRONTEND);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let response = service.oneshot(request(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(response.body(), "");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "refused before the handler"
    );
}

#[tokio::test]
async fn the_layer_answers_403_to_a_valid_but_unauthorized_subject() {
    let issuer = Issuer::new();
    let source = Arc::new(JwtSource::fixed(issuer.bundles()));
    let calls = Arc::new(AtomicUsize::new(0));
    let only_frontend = Authorizer::exact(SpiffeId::parse(FRONTEND).unwrap());
    let service = BearerAuthLayer::new(source, AUD)
        .authorize(only_frontend)
        .layer(echo_service(Arc::clone(&calls)));

    let intruder = issuer.token("spiffe://example.org/batch", AUD, unix_now() + 300);
    let response = service
        .clone()
        .oneshot(request(Some(&format!("Bearer {intruder}"))))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        "Bearer error=\"insufficient_scope\""
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let token = issuer.token(FRONTEND, AUD, unix_now() + 300);
    let response = service
        .oneshot(request(Some(&format!("Bearer {token}"))))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
