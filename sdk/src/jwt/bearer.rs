//! Bearer JWT-SVIDs over HTTP (`Authorization: Bearer <token>`, RFC 6750):
//! a function for handlers and a tower [`Layer`] for whole services, for
//! any framework built on the `http` crate (axum, tonic, hyper).
//!
//! ```
//! use std::time::SystemTime;
//! use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
//! use rootmark_sdk::jwt::JwtBundleSet;
//! use rootmark_sdk::jwt::bearer::{BearerError, authenticate_with};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwdw=="));
//! let refused = authenticate_with(&headers, &JwtBundleSet::new(), "billing", SystemTime::now());
//! let error = refused.unwrap_err();
//! assert!(matches!(error, BearerError::NotBearer { .. }));
//! assert_eq!(error.status(), http::StatusCode::UNAUTHORIZED);
//! assert_eq!(error.www_authenticate(), "Bearer");
//! ```
//!
//! With a tower stack (for axum: `Router::layer(BearerAuthLayer::new(..))`),
//! handlers find the validated [`JwtSvid`] in the request extensions:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use rootmark_sdk::{JwtSource, SpiffeId};
//! use rootmark_sdk::jwt::bearer::BearerAuthLayer;
//! use rootmark_sdk::tls::Authorizer;
//!
//! let source = Arc::new(JwtSource::new().await?);
//! let layer = BearerAuthLayer::new(source, "billing")
//!     .authorize(Authorizer::exact(SpiffeId::parse("spiffe://example.org/frontend")?));
//! // let app = Router::new().route(..).layer(layer);
//! // async fn handler(Extension(caller): Extension<JwtSvid>) { caller.spiffe_id() .. }
//! # let _ = layer; Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};

use super::{JwtBundleLookup, JwtError, JwtSvid, validate_jwt_svid};
use crate::SpiffeId;
use crate::source::JwtSource;
use crate::tls::Authorizer;

/// Why a request carries no acceptable bearer JWT-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// No `Authorization` header.
    #[error("no Authorization header (expected `Authorization: Bearer <JWT-SVID>`)")]
    MissingHeader,
    /// More than one `Authorization` header.
    #[error("{count} Authorization headers (expected exactly one)")]
    MultipleHeaders {
        /// How many there were.
        count: usize,
    },
    /// The header is not of the form `Bearer <token>`, or not ASCII.
    #[error("malformed Authorization header: {reason}")]
    MalformedHeader {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The header uses another scheme (`Basic`, …).
    #[error("Authorization scheme {scheme:?} is not Bearer")]
    NotBearer {
        /// The scheme found (at most 32 bytes of it).
        scheme: String,
    },
    /// The token is not a valid JWT-SVID for the audience.
    #[error(transparent)]
    Invalid(#[from] JwtError),
    /// The token is valid, but its SPIFFE ID is not authorized.
    #[error("JWT-SVID subject {spiffe_id} is not authorized ({authorizer})")]
    Forbidden {
        /// The authenticated subject.
        spiffe_id: SpiffeId,
        /// The authorizer that refused it (its debug form).
        authorizer: String,
    },
}

impl BearerError {
    /// The HTTP status to answer with: 400 for a malformed request, 401
    /// for no or an invalid token, 403 for a valid but unauthorized one,
    /// 500 for an empty expected audience (a server misconfiguration).
    pub fn status(&self) -> StatusCode {
        match self {
            BearerError::MultipleHeaders { .. } | BearerError::MalformedHeader { .. } => {
                StatusCode::BAD_REQUEST
            }
            BearerError::MissingHeader | BearerError::NotBearer { .. } => StatusCode::UNAUTHORIZED,
            BearerError::Invalid(JwtError::EmptyAudience) => StatusCode::INTERNAL_SERVER_ERROR,
            BearerError::Invalid(_) => StatusCode::UNAUTHORIZED,
            BearerError::Forbidden { .. } => StatusCode::FORBIDDEN,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3). It names the error
    /// class only: the details stay in the server's logs.
    pub fn www_authenticate(&self) -> HeaderValue {
        HeaderValue::from_static(match self {
            BearerError::MissingHeader | BearerError::NotBearer { .. } => "Bearer",
            BearerError::MultipleHeaders { .. } | BearerError::MalformedHeader { .. } => {
                "Bearer error=\"invalid_request\""
            }
            BearerError::Invalid(_) => "Bearer error=\"invalid_token\"",
            BearerError::Forbidden { .. } => "Bearer error=\"insufficient_scope\"",
        })
    }

    /// An empty-bodied response with [`status`](Self::status) and
    /// [`www_authenticate`](Self::www_authenticate).
    pub fn to_response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, self.www_authenticate());
        response
    }
}

/// The token of the one `Authorization: Bearer <token>` header (scheme
/// case-insensitive, surrounding spaces ignored), not yet validated.
///
/// # Errors
/// [`BearerError::MissingHeader`], [`BearerError::MultipleHeaders`],
/// [`BearerError::NotBearer`] or [`BearerError::MalformedHeader`].
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(BearerError::MissingHeader)?;
    let extra = values.count();
    if extra > 0 {
        return Err(BearerError::MultipleHeaders { count: extra + 1 });
    }
    let value = value.to_str().map_err(|_| BearerError::MalformedHeader {
        reason: "not visible ASCII",
    })?;
    let value = value.trim_matches(' ');
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        if scheme.is_empty() {
            return Err(BearerError::MalformedHeader {
                reason: "empty value",
            });
        }
        let mut end = scheme.len().min(32);
        while !scheme.is_char_boundary(end) {
            end -= 1;
        }
        return Err(BearerError::NotBearer {
            scheme: scheme[..end].to_owned(),
        });
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(BearerError::MalformedHeader {
            reason: "Bearer without a token",
        });
    }
    if token.contains([' ', '\t']) {
        return Err(BearerError::MalformedHeader {
            reason: "whitespace inside the token",
        });
    }
    Ok(token)
}

/// Validates the request's bearer JWT-SVID for `audience` against the
/// source's current JWT bundles.
///
/// # Errors
/// As [`bearer_token`], or [`BearerError::Invalid`] with the
/// [`JwtError`] naming the failed check.
pub fn authenticate(
    headers: &HeaderMap,
    source: &JwtSource,
    audience: &str,
) -> Result<JwtSvid, BearerError> {
    let bundles = source.bundles();
    authenticate_with(headers, &*bundles, audience, SystemTime::now())
}

/// As [`authenticate`], against `bundles` at time `now`.
///
/// # Errors
/// As [`authenticate`].
pub fn authenticate_with<B: JwtBundleLookup + ?Sized>(
    headers: &HeaderMap,
    bundles: &B,
    audience: &str,
    now: SystemTime,
) -> Result<JwtSvid, BearerError> {
    let token = bearer_token(headers)?;
    Ok(validate_jwt_svid(token, bundles, audience, now)?)
}

/// A tower [`Layer`] that admits only requests with a valid bearer
/// JWT-SVID for one audience (and, optionally, an authorized subject).
///
/// Admitted requests reach the inner service with the [`JwtSvid`] in
/// their extensions; refused ones are answered with
/// [`BearerError::to_response`] and never reach it.
#[derive(Debug, Clone)]
pub struct BearerAuthLayer {
    source: Arc<JwtSource>,
    audience: Arc<str>,
    authorizer: Authorizer,
}

impl BearerAuthLayer {
    /// Validates against `source`'s current bundles for `audience`; any
    /// subject is admitted until [`authorize`](Self::authorize) narrows it.
    pub fn new(source: Arc<JwtSource>, audience: impl Into<Arc<str>>) -> Self {
        BearerAuthLayer {
            source,
            audience: audience.into(),
            authorizer: Authorizer::any(),
        }
    }

    /// Admits only subjects `authorizer` accepts (others get 403).
    pub fn authorize(mut self, authorizer: Authorizer) -> Self {
        self.authorizer = authorizer;
        self
    }

    fn check(&self, headers: &HeaderMap) -> Result<JwtSvid, BearerError> {
        let svid = authenticate(headers, &self.source, &self.audience)?;
        if !self.authorizer.authorize(svid.spiffe_id()) {
            return Err(BearerError::Forbidden {
                spiffe_id: svid.spiffe_id().clone(),
                authorizer: format!("{:?}", self.authorizer),
            });
        }
        Ok(svid)
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`BearerAuthLayer`] wraps around an inner one.
#[derive(Debug, Clone)]
pub struct BearerAuth<S> {
    inner: S,
    layer: BearerAuthLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BearerFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.layer.check(request.headers()) {
            Ok(svid) => {
                request.extensions_mut().insert(svid);
                BearerFuture {
                    inner: Some(self.inner.call(request)),
                    refused: None,
                }
            }
            Err(error) => {
                tracing::debug!(%error, "bearer JWT-SVID refused");
                BearerFuture {
                    inner: None,
                    refused: Some(error.to_response()),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`BearerAuth`]: the inner service's, or an
    /// immediate refusal.
    pub struct BearerFuture<F, B> {
        #[pin]
        inner: Option<F>,
        refused: Option<Response<B>>,
    }
}

impl<F, B, E> Future for BearerFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(inner) = this.inner.as_pin_mut() {
            return inner.poll(cx);
        }
        match this.refused.take() {
            Some(response) => Poll::Ready(Ok(response)),
            None => panic!("BearerFuture polled after completion"),
        }
    }
}

#[cfg(test)]
mod tests;
