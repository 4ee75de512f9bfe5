//! `rediss://`: the limiter over TLS, against a `redis-server` of this
//! test's own with a certificate from a throwaway CA (made with the
//! `openssl` command). The server's certificate is verified: trusted only
//! once `SSL_CERT_FILE` names the CA, as a user of a private CA would do.
//!
//! Its own test binary: it sets `SSL_CERT_FILE` for the whole process.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keygate::{RateDecision, RateLimit, SharedRateLimiter};
use keygate_redis::RedisRateLimiter;
use support::{entity_id, free_port, unavailable, unique_prefix, REDIS_SERVER};

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A CA (`ca.crt`) and a server certificate for `localhost` and
/// `127.0.0.1` signed by it (`server.crt`, `server.key`), in `dir`.
fn certificates(dir: &Path) -> Result<(), String> {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=keygate test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca)?;
    let mut csr = vec!["req", "-nodes"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    )
}

/// `redis-server` with TLS only (no plain port), killed when dropped.
struct TlsRedis(Child);

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tls_redis(dir: &Path, port: u16) -> Result<TlsRedis, String> {
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    Command::new(REDIS_SERVER)
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--tls-cert-file", &file("server.crt")])
        .args(["--tls-key-file", &file("server.key")])
        .args(["--tls-ca-cert-file", &file("ca.crt")])
        .args(["--tls-auth-clients", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(TlsRedis)
        .map_err(|e| format!("cannot run {REDIS_SERVER}: {e}"))
}

async fn limiter(url: &str) -> RedisRateLimiter {
    RedisRateLimiter::builder(url)
        .prefix(unique_prefix())
        .connect()
        .await
        .expect("a rediss:// URL is accepted")
}

#[tokio::test]
async fn limits_are_exact_over_tls_and_the_server_certificate_is_verified() {
    let dir = tempdir();
    if let Err(e) = certificates(&dir) {
        return unavailable::<()>("redis TLS", "cannot make test certificates", e).unwrap_or(());
    }
    let port = free_port();
    let mut server = match start_tls_redis(&dir, port) {
        Ok(server) => server,
        Err(e) => return unavailable::<()>("redis TLS", "no redis-server", e).unwrap_or(()),
    };
    let url = format!("rediss://localhost:{port}");

    // Trusting the test CA: wait until the server answers over TLS.
    std::env::set_var("SSL_CERT_FILE", dir.join("ca.crt"));
    let trusted = limiter(&url).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = trusted.ping().await {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("redis-server with TLS on port {port} exited: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer over TLS within 10 s: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Exact over TLS: three of a window of three, then refused.
    let id = entity_id();
    let window = [RateLimit::new("w", 3, Duration::from_secs(60))];
    for n in 0..3 {
        let decision = trusted.acquire(&id, &window, 1).await.unwrap();
        assert!(matches!(decision, RateDecision::Allowed(_)), "request {n}");
    }
    let fourth = trusted.acquire(&id, &window, 1).await.unwrap();
    assert!(matches!(fourth, RateDecision::Limited { .. }));

    // Without the CA the server's certificate is not trusted: no answer.
    std::env::remove_var("SSL_CERT_FILE");
    let untrusted = limiter(&url).await;
    let refused = untrusted.ping().await.unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("certificate"),
        "{refused}"
    );
    // And plain `redis://` to the TLS port does not get an answer either.
    let plain = RedisRateLimiter::builder(&format!("redis://127.0.0.1:{port}"))
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    assert!(plain.ping().await.is_err());
}

/// A fresh directory under the system's temporary one.
fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keygate-redis-tls-{}", entity_id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}
