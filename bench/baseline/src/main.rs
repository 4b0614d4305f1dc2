//! The limit `make bench` compares the webhook against: the same TLS configuration (rustls with
//! ring, the same certificate resolver), the same hyper HTTP/1.1 server and runtime shape, and no
//! work at all: every POST gets one pre-encoded answer, the webhook's own answer to the sample, so
//! both send the same bytes. Whatever the webhook costs beyond this server is its own doing.
//!
//! Usage: webhook-baseline CERT_DIR PORT SAMPLE_REVIEW FQDN   (listens on 127.0.0.1 only)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use adapters::http::certs::CertPaths;
use adapters::http::reload::ReloadingCertResolver;
use adapters::http::tls;
use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// As the webhook's binary: the comparison is of the work done, not of the thread count.
const WORKER_THREADS: usize = 2;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cert_dir, port, sample, fqdn] = args.as_slice() else {
        bail!("usage: webhook-baseline CERT_DIR PORT SAMPLE_REVIEW FQDN");
    };
    let fqdn = fqdn.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let sample = std::fs::read(sample).with_context(|| format!("cannot read {sample}"))?;
    let answer = domain::webhook::review::review(&sample, &fqdn)
        .map_err(|e| anyhow::anyhow!("the sample is not a review: {e}"))?;
    let answer = Bytes::from(answer.to_json());
    let provider = tls::provider();
    let certs = ReloadingCertResolver::load(
        CertPaths::in_dir(Path::new(cert_dir), "tls.crt", "tls.key"),
        Arc::clone(&provider),
    )?;
    let config = tls::server_config(provider, Arc::new(certs), None)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let address = SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>()?));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()?
        .block_on(serve(address, acceptor, answer))
}

async fn serve(address: SocketAddr, acceptor: TlsAcceptor, answer: Bytes) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (acceptor, answer) = (acceptor.clone(), answer.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let answer = answer.clone();
                async move {
                    // Read the body as the webhook must, so only the review itself differs.
                    let _ = request.into_body().collect().await;
                    let mut response = Response::new(Full::new(answer));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
