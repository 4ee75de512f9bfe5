//! `keygate serve`'s dashboard flags: on at `/ui` by default with a
//! `Secure` cookie, its sessions in the keys' database; `--no-dashboard`,
//! `--ui-idle-timeout`, `--ui-insecure-cookies`.

mod support;

use support::{http, Env, Server};

fn set_cookie(headers: &str) -> Option<&str> {
    headers.lines().find_map(|l| {
        l.strip_prefix("set-cookie: ")
            .or_else(|| l.strip_prefix("Set-Cookie: "))
    })
}

#[test]
fn the_dashboard_is_served_at_ui_by_default() {
    let env = Env::new();
    let server = Server::start(&env, |_| {});
    let root = http(&server.addr, "GET", "/ui", None, None);
    assert_eq!(root.status, 303, "{root:?}");
    assert!(
        root.headers.contains("location: /ui/login"),
        "{}",
        root.headers
    );
    let login = http(&server.addr, "GET", "/ui/login", None, None);
    assert_eq!(login.status, 200, "{login:?}");
    assert!(login.body.contains("<h1>Sign in</h1>"));
    assert!(login
        .headers
        .contains("content-security-policy: default-src 'none'"));
    let cookie = set_cookie(&login.headers).expect("session cookie");
    for flag in [
        "keygate_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/ui",
        "Max-Age=1800",
    ] {
        assert!(cookie.contains(flag), "{flag}: {cookie}");
    }
    assert!(
        server.logs().contains("dashboard at http://"),
        "{}",
        server.logs()
    );
    // The API is unchanged beside it.
    assert_eq!(
        http(&server.addr, "GET", "/healthz", None, None).status,
        200
    );
    let (_, logs) = server.stop(libc::SIGTERM);
    assert!(!logs.contains("ERROR"), "{logs}");
    // The sessions' table sits beside keygate's.
    let url = format!("sqlite://{}", env.db_path().display());
    let tables: Vec<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_scalar("select name from sqlite_master where type = 'table'")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    assert!(
        tables.iter().any(|t| t == "keygate_ui_sessions"),
        "{tables:?}"
    );
    assert!(tables.iter().any(|t| t == "api_keys"), "{tables:?}");
}

#[test]
fn no_dashboard_and_cookie_flags() {
    let env = Env::new();
    let off = Server::start(&env, |cmd| {
        cmd.arg("--no-dashboard");
    });
    let page = http(&off.addr, "GET", "/ui/login", None, None);
    assert_eq!(page.status, 404, "{page:?}");
    off.stop(libc::SIGTERM);

    let relaxed = Server::start(&env, |cmd| {
        cmd.args(["--ui-insecure-cookies", "--ui-idle-timeout", "5"]);
    });
    let login = http(&relaxed.addr, "GET", "/ui/login", None, None);
    let cookie = set_cookie(&login.headers)
        .expect("session cookie")
        .to_owned();
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("Max-Age=300"), "{cookie}");
    assert!(
        relaxed.logs().contains("--ui-insecure-cookies"),
        "{}",
        relaxed.logs()
    );
    relaxed.stop(libc::SIGTERM);
    let (_, err) = env.fails(&["serve", "--ui-idle-timeout", "0"], 2);
    assert!(err.contains("ui-idle-timeout"), "{err}");
}
