//! TLS to the registry: certificate verification is always on. A registry whose certificate
//! comes from a private CA works once that CA is given with `--ca-bundle`; without it the job
//! fails with a certificate error after a single attempt (a bad certificate is never retried).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use pipeline_publisher::artifacts::ArtifactStore;
use pipeline_publisher::demo::{DEMO_REPO, FIRMWARE_EXAMPLE, LocalEnvironment};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::{Publisher, PublisherSettings};
use pipeline_publisher::registry::{HttpOptions, http_client_with};
use pipeline_publisher::sandbox::JobResult;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private CA (PEM) and a server certificate it signed for `localhost`.
fn private_ca() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "nest-box fleet test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    (
        ca_cert.pem(),
        server_cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    )
}

/// Serves `router` over TLS on 127.0.0.1; returns `https://localhost:PORT` and a count of the
/// TCP connections it accepted.
async fn serve_tls(
    router: axum::Router,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> (String, Arc<AtomicUsize>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                    .await;
            });
        }
    });
    (url, connections)
}

async fn publish_over_tls(ca_bundle: Option<&str>) -> (LocalEnvironment, JobResult, usize) {
    let environment = LocalEnvironment::start().await.unwrap();
    let (ca_pem, certificate, key) = private_ca();
    let (url, connections) =
        serve_tls(environment.registry.registry.router(), certificate, key).await;
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir.path().join("fleet-ca.pem");
    std::fs::write(&bundle, ca_bundle.map_or(ca_pem.as_str(), |pem| pem)).unwrap();

    let mut configuration = environment.firmware_configuration();
    configuration.insert(properties::ARTIFACTORY_HOST.to_owned(), url);
    let artifact = environment
        .upload_artifact("BuildOutput", Some("0123456789abcdef"), FIRMWARE_EXAMPLE)
        .unwrap();
    let job_id = environment.queue_job("nestbox-firmware", configuration, vec![artifact]);
    let http = http_client_with(&HttpOptions {
        read_timeout: Duration::from_secs(30),
        ca_bundle: Some(bundle),
    })
    .unwrap();
    let publisher = Publisher::new(
        PublisherSettings::default(),
        ArtifactStore::new(environment.sdk_config.clone(), true),
        http,
    );
    environment.run_worker(publisher, 1).await.unwrap();
    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    assert_eq!(record.results.len(), 1, "{:?}", record.results);
    let result = record.results[0].clone();
    (environment, result, connections.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_private_ca_given_with_ca_bundle_is_trusted() {
    let (environment, result, _) = publish_over_tls(None).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    assert_eq!(environment.registry.registry.artifacts(DEMO_REPO).len(), 3);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_job_without_a_retry() {
    // "Some other CA": the bundle does not contain the CA that signed the server.
    let (other_ca, _, _) = private_ca();
    let (environment, result, connections) = publish_over_tls(Some(&other_ca)).await;
    let JobResult::Failure {
        failure_type,
        message,
        ..
    } = result
    else {
        panic!("expected a failure: {result:?}");
    };
    assert_eq!(failure_type, "JobFailed");
    assert!(
        message.to_ascii_lowercase().contains("certificate"),
        "{message}"
    );
    assert_eq!(connections, 1, "a certificate error is not retried");
    assert!(environment.registry.registry.tokens().is_empty());
}
