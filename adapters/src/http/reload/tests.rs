use super::*;
use rstest::rstest;
use std::path::PathBuf;

const CERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/certs");

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies a committed pair (`server-ecdsa`, ...) to `dir`.
fn put_pair(pair: &str, dir: &Path) {
    std::fs::create_dir_all(dir).expect("the directory");
    for file in ["tls.crt", "tls.key"] {
        std::fs::copy(format!("{CERTS}/{pair}/{file}"), dir.join(file)).expect("a copy");
    }
}

fn served_cert(resolver: &ReloadingCertResolver) -> Vec<u8> {
    resolver.current().cert[0].to_vec()
}

fn committed_cert(pair: &str) -> Vec<u8> {
    let pem = std::fs::read(format!("{CERTS}/{pair}/tls.crt")).expect("a committed certificate");
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::from_pem_slice(&pem)
        .expect("PEM")
        .to_vec()
}

fn resolver(dir: &Path) -> ReloadingCertResolver {
    let paths = CertPaths::in_dir(dir, "tls.crt", "tls.key");
    ReloadingCertResolver::load(paths, crate::http::tls::provider()).expect("a usable pair")
}

#[rstest]
#[case::rsa_pkcs1("server-rsa-pkcs1")]
#[case::rsa_pkcs8("server-rsa-pkcs8")]
#[case::ecdsa_sec1("server-ecdsa")]
fn loads_rsa_and_ecdsa_keys(#[case] pair: &str) {
    let dir = TempDir::new(pair);
    put_pair(pair, &dir.0);
    assert_eq!(served_cert(&resolver(&dir.0)), committed_cert(pair));
}

#[test]
fn unchanged_files_are_not_read_again() {
    let dir = TempDir::new("unchanged");
    put_pair("server-ecdsa", &dir.0);
    let resolver = resolver(&dir.0);
    assert!(matches!(resolver.check(), Reload::Unchanged));
}

#[test]
fn a_rewritten_pair_is_served_after_the_next_check() {
    let dir = TempDir::new("rewritten");
    put_pair("server-ecdsa", &dir.0);
    let resolver = resolver(&dir.0);
    put_pair("server-rsa-pkcs8", &dir.0);
    assert!(matches!(resolver.check(), Reload::Reloaded { .. }));
    assert_eq!(served_cert(&resolver), committed_cert("server-rsa-pkcs8"));
}

/// The kubelet writes a secret volume as `..2024_01_01_00_00_00.1/tls.crt`, a symlink `..data`
/// to that directory, and `tls.crt -> ..data/tls.crt`; an update renames a new `..data` over the
/// old one.
#[test]
fn a_secret_volume_data_swap_is_served_after_the_next_check() {
    let dir = TempDir::new("data-swap");
    put_pair("server-ecdsa", &dir.0.join("..v1"));
    std::os::unix::fs::symlink("..v1", dir.0.join("..data")).expect("..data");
    for file in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{file}"), dir.0.join(file)).expect("a link");
    }
    let resolver = resolver(&dir.0);
    put_pair("server-rsa-pkcs1", &dir.0.join("..v2"));
    std::os::unix::fs::symlink("..v2", dir.0.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(dir.0.join("..data_tmp"), dir.0.join("..data")).expect("the swap");
    assert!(matches!(resolver.check(), Reload::Reloaded { .. }));
    assert_eq!(served_cert(&resolver), committed_cert("server-rsa-pkcs1"));
}

#[rstest]
#[case::key_of_another_pair("tls.key", KeyOfAnotherPair, "does not serve certificate")]
#[case::garbage_certificate("tls.crt", Garbage, "holds no certificate")]
#[case::garbage_key("tls.key", Garbage, "holds no private key")]
#[case::truncated_certificate("tls.crt", Truncated, "is not valid PEM")]
#[case::removed_key("tls.key", Removed, "cannot read")]
fn a_broken_pair_is_refused_and_the_last_good_one_stays(
    #[case] file: &str,
    #[case] breakage: Breakage,
    #[case] reason: &str,
) {
    let dir = TempDir::new(&format!("broken-{file}-{reason}").replace(' ', "-"));
    put_pair("server-ecdsa", &dir.0);
    let resolver = resolver(&dir.0);
    let path = dir.0.join(file);
    match breakage {
        KeyOfAnotherPair => {
            std::fs::copy(format!("{CERTS}/server-rsa-pkcs8/tls.key"), &path).expect("a copy");
        }
        Garbage => std::fs::write(&path, "not PEM\n").expect("a write"),
        Truncated => {
            let pem = std::fs::read_to_string(&path).expect("the certificate");
            std::fs::write(&path, &pem[..pem.len() / 2]).expect("a write");
        }
        Removed => std::fs::remove_file(&path).expect("a removal"),
    }
    match resolver.check() {
        Reload::Refused(cause) => {
            let message = cause.to_string();
            assert!(
                message.contains(reason),
                "{message:?} does not say {reason:?}"
            );
            assert!(
                message.contains(&path.display().to_string()),
                "{message:?} names no file"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(served_cert(&resolver), committed_cert("server-ecdsa"));
    assert!(
        matches!(resolver.check(), Reload::Unchanged),
        "a refused pair is not retried until it changes"
    );
    put_pair("server-rsa-pkcs1", &dir.0);
    assert!(matches!(resolver.check(), Reload::Reloaded { .. }));
    assert_eq!(served_cert(&resolver), committed_cert("server-rsa-pkcs1"));
}

#[derive(Debug, Clone, Copy)]
enum Breakage {
    KeyOfAnotherPair,
    Garbage,
    Truncated,
    Removed,
}
use Breakage::*;

#[test]
fn a_missing_pair_at_start_names_the_file() {
    let dir = TempDir::new("missing");
    let error = ReloadingCertResolver::load(
        CertPaths::in_dir(&dir.0, "tls.crt", "tls.key"),
        crate::http::tls::provider(),
    )
    .expect_err("no files");
    assert!(error.to_string().starts_with(&format!(
        "cannot read {}: No such file",
        dir.0.join("tls.crt").display()
    )));
}
