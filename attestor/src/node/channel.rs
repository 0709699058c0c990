//! gRPC channels to the issuer over rustls.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tonic::transport::{Channel, Endpoint};

use super::error::NodeError;

/// A lazily connecting channel to `addr` (`host:port`) over TLS with
/// `config`. The server name is not checked by the SPIFFE verifiers (they
/// check the SPIFFE ID), but is still sent as SNI when it is a DNS name.
pub fn tls_channel(addr: &str, config: rustls::ClientConfig) -> Result<Channel, NodeError> {
    let (host, _) = addr.rsplit_once(':').ok_or_else(|| NodeError::Connect {
        addr: addr.to_owned(),
        reason: "not host:port".to_owned(),
    })?;
    let server_name =
        ServerName::try_from(host.trim_matches(['[', ']']).to_owned()).map_err(|e| {
            NodeError::Connect {
                addr: addr.to_owned(),
                reason: format!("{host:?} is not a host name or IP address: {e}"),
            }
        })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let target = addr.to_owned();
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| NodeError::Connect {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(std::time::Duration::from_secs(10))
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_uri| {
            let connector = connector.clone();
            let target = target.clone();
            let server_name = server_name.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(&target).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        })),
    )
}
