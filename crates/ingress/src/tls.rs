//! The HTTPS listener of custom domains: TLS (rustls, ring) with the certificate picked by SNI.
//!
//! The operator configures certificates by id (`[http.certificates] <id> = { cert, key }`, PEM files read at
//! start); a domain created with `Protocol` `HTTPS` or `HTTP&HTTPS` names one by `CertConfig.CertificateId`. For
//! each connection the listener reads the ClientHello, looks the SNI name up as a custom domain (through the
//! control plane's domain cache, so a domain created or changed is served at once on this node) and completes the
//! handshake with that domain's certificate. The lookup is asynchronous, which rustls's synchronous
//! `ResolvesServerCert` cannot do, so the choice is made before the handshake and handed to rustls as a resolver
//! that answers the chosen certificate. A hello without SNI, or naming no HTTPS domain, is refused. Requests then
//! go through the function listener's router with an [`OverTls`](crate::domains::OverTls) mark.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use control::Control;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// Why a configured certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate {id}: reading {path}: {why}")]
    Read {
        id: String,
        path: String,
        why: String,
    },
    #[error("certificate {id}: {why}")]
    Key { id: String, why: String },
}

/// The configured certificates, by id.
#[derive(Debug, Default, Clone)]
pub struct Certificates(HashMap<String, Arc<CertifiedKey>>);

impl Certificates {
    /// Loads `(id, chain PEM, key PEM)` triples.
    pub fn load<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a Path, &'a Path)>,
    ) -> Result<Certificates, TlsError> {
        let provider = provider();
        let mut out = HashMap::new();
        for (id, cert, key) in files {
            let read = |p: &Path| {
                std::fs::read(p).map_err(|e| TlsError::Read {
                    id: id.to_string(),
                    path: p.display().to_string(),
                    why: e.to_string(),
                })
            };
            let chain = CertificateDer::pem_slice_iter(&read(cert)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Key {
                    id: id.into(),
                    why: format!("the certificate chain is not PEM: {e}"),
                })?;
            if chain.is_empty() {
                return Err(TlsError::Key {
                    id: id.into(),
                    why: "the certificate file holds no certificate".into(),
                });
            }
            let key = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| TlsError::Key {
                id: id.into(),
                why: format!("the key is not a PEM private key: {e}"),
            })?;
            let ck = CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Key {
                id: id.into(),
                why: e.to_string(),
            })?;
            out.insert(id.to_string(), Arc::new(ck));
        }
        Ok(Certificates(out))
    }

    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    pub fn get(&self, id: &str) -> Option<Arc<CertifiedKey>> {
        self.0.get(id).cloned()
    }
}

/// The certificate for a hello naming `sni`: the configured certificate of the HTTPS custom domain `sni` names.
/// `domain_cert` answers a domain's `CertificateId` if it is an HTTPS domain.
pub async fn select<F, Fut>(
    certs: &Certificates,
    sni: Option<&str>,
    domain_cert: F,
) -> Option<Arc<CertifiedKey>>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let name = sni?.trim_end_matches('.').to_ascii_lowercase();
    let id = domain_cert(name).await?;
    certs.get(&id)
}

/// rustls's *ring* provider: ring builds with a C compiler alone, where aws-lc-rs needs cmake and takes far longer.
/// rustls marks it deprecated for lacking post-quantum key exchange; classic ECDHE is what it offers here.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Answers the one certificate chosen for this connection.
#[derive(Debug)]
struct Chosen(Arc<CertifiedKey>);

impl ResolvesServerCert for Chosen {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Most TLS connections served at once.
const MAX_CONNECTIONS: usize = 1024;
/// Time for a TLS handshake, and for a request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` over TLS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    control: Control,
    certs: Certificates,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let certs = Arc::new(certs);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (router, control, certs) = (router.clone(), control.clone(), certs.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(why) = connection(tcp, peer, router, control, &certs).await {
                tracing::debug!(%peer, %why, "TLS connection refused");
            }
        });
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    control: Control,
    certs: &Certificates,
) -> Result<(), String> {
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let start = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor)
        .await
        .map_err(|_| "no ClientHello in time".to_string())?
        .map_err(|e| format!("bad ClientHello: {e}"))?;
    let sni = start.client_hello().server_name().map(str::to_string);
    let key = select(certs, sni.as_deref(), |name| async move {
        match control.custom_domain(&name).await {
            Ok(Some(d)) if d.serves_https() => Some(d.cert_id.clone()),
            _ => None,
        }
    })
    .await
    .ok_or_else(|| format!("no HTTPS custom domain for SNI {sni:?}"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Chosen(key)));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(Arc::new(cfg)))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake failed: {e}"))?;
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req.extensions_mut().insert(crate::domains::OverTls);
        tower_service::Service::call(&mut router.clone(), req)
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await
        .map_err(|e| format!("connection ended: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::sign::{Signer, SigningKey};
    use tokio_rustls::rustls::{SignatureAlgorithm, SignatureScheme};

    /// A key that never signs: selection only compares which certificate comes back.
    #[derive(Debug)]
    struct NoKey;

    impl SigningKey for NoKey {
        fn choose_scheme(&self, _offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
            None
        }
        fn algorithm(&self) -> SignatureAlgorithm {
            SignatureAlgorithm::ECDSA
        }
    }

    fn certs(ids: &[&str]) -> Certificates {
        Certificates(
            ids.iter()
                .map(|id| {
                    let der = CertificateDer::from(id.as_bytes().to_vec());
                    (
                        id.to_string(),
                        Arc::new(CertifiedKey::new(vec![der], Arc::new(NoKey))),
                    )
                })
                .collect(),
        )
    }

    /// The certificate id of a domain, as the listener's lookup answers it.
    async fn lookup(name: String) -> Option<String> {
        match name.as_str() {
            "one.example.com" => Some("cert-one".into()),
            "two.example.com" => Some("cert-two".into()),
            "gone.example.com" => Some("cert-removed".into()),
            _ => None,
        }
    }

    fn leaf(k: Option<Arc<CertifiedKey>>) -> Option<Vec<u8>> {
        k.map(|k| k.cert[0].as_ref().to_vec())
    }

    #[tokio::test]
    async fn the_sni_name_picks_its_domains_certificate() {
        let c = certs(&["cert-one", "cert-two"]);
        assert_eq!(
            leaf(select(&c, Some("one.example.com"), lookup).await),
            Some(b"cert-one".to_vec())
        );
        assert_eq!(
            leaf(select(&c, Some("TWO.Example.com."), lookup).await),
            Some(b"cert-two".to_vec())
        );
        // No SNI, a name that is no HTTPS domain, a certificate no longer configured: no certificate.
        assert!(select(&c, None, lookup).await.is_none());
        assert!(
            select(&c, Some("three.example.com"), lookup)
                .await
                .is_none()
        );
        assert!(select(&c, Some("gone.example.com"), lookup).await.is_none());
    }

    #[test]
    fn loading_names_the_certificate_that_fails() {
        let dir = std::env::temp_dir().join(format!("stratus-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let cert = dir.join("c.pem");
        std::fs::write(&cert, "not pem").expect("write");
        let missing = dir.join("missing.pem");
        let e =
            Certificates::load([("c1", cert.as_path(), missing.as_path())]).expect_err("no certs");
        assert!(e.to_string().contains("c1"), "{e}");
        let e =
            Certificates::load([("c2", missing.as_path(), cert.as_path())]).expect_err("missing");
        assert!(
            e.to_string().contains("c2") && e.to_string().contains("missing.pem"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
