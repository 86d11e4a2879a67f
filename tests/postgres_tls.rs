//! TLS to PostgreSQL, as the URL asks for it: a throwaway cluster with `ssl = on` and a
//! certificate from a throwaway certificate authority (made with `openssl`); a runtime
//! on `sslmode=require` and on `sslmode=verify-full` with `sslrootcert` connects over
//! TLS (the server says so in `pg_stat_ssl`), and `verify-full` against another
//! authority is refused with a clear error.
//!
//! Skipped, saying so, without PostgreSQL or `openssl` (`ORDO_REQUIRE_POSTGRES=1` makes
//! a missing server a failure).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ordo::journal::PgOptions;
use ordo::{Ctx, Runtime};
use ordo_testkit::postgres::TestPostgres;

async fn hello(ctx: Ctx, n: u32) -> Result<u32, String> {
    ctx.step("double", move || async move { Ok::<_, String>(n * 2) })
        .await
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority `name` in `dir`: `name.key`, `name.pem`.
fn authority(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn psql(pg: &TestPostgres, url: &str, sql: &str) -> String {
    pg.query(url, sql)
}

#[test]
fn tls_is_used_when_the_url_asks_for_it_and_verify_full_checks_the_certificate() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: no openssl to make certificates");
        return;
    }
    let Some(pg) = TestPostgres::start() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let pg = &pg;
    let Some(dir) = pg.dir() else {
        eprintln!("skipped: an external server's TLS settings are not this test's");
        return;
    };
    // The server's certificate, issued by `ca` for 127.0.0.1 and localhost.
    authority(dir, "ca");
    authority(dir, "other-ca");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
    // The server's user must own its key, readable by it alone.
    for file in ["server.key", "server.crt"] {
        let status = Command::new("chown")
            .arg(format!("--reference={}", dir.display()))
            .arg(dir.join(file))
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let admin = pg.url().to_string();
    psql(pg, &admin, "ALTER SYSTEM SET ssl = on");
    psql(
        pg,
        &admin,
        &format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            dir.join("server.crt").display()
        ),
    );
    psql(
        pg,
        &admin,
        &format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            dir.join("server.key").display()
        ),
    );
    psql(pg, &admin, "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(300));

    let url = pg.database("tls");
    let database = url.rsplit('/').next().unwrap().to_string();
    let encrypted = |url: &str| {
        let rt = Runtime::builder()
            .postgres_with(PgOptions::new(url).reconnect_for(Duration::from_secs(3)))
            .register("hello", hello)
            .build()
            .unwrap();
        let handle = rt.start::<_, u32, String>("hello", "h", 21u32).unwrap();
        assert_eq!(rt.block_on(handle.result()).unwrap(), Ok(42));
        // Every connection the runtime holds to this database is encrypted.
        let (tls, all) = {
            let row = psql(
                pg,
                &admin,
                &format!(
                    "SELECT count(*) FILTER (WHERE s.ssl) || ' ' || count(*)
                         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                         WHERE a.datname = '{}' AND a.application_name <> 'psql'",
                    database
                ),
            );
            let (tls, all) = row.split_once(' ').unwrap();
            (tls.parse::<u32>().unwrap(), all.parse::<u32>().unwrap())
        };
        assert!(
            all > 0 && tls == all,
            "{tls} of {all} connections use TLS: {}",
            psql(
                pg,
                &admin,
                "SELECT string_agg(a.datname || ':' || a.application_name || ':' || s.ssl, ', ')
                     FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            )
        );
    };
    encrypted(&format!("{url}?sslmode=require"));
    let ca = dir.join("ca.pem");
    encrypted(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    ));
    // Another authority did not issue the server's certificate: refused.
    let other = dir.join("other-ca.pem");
    let refused = Runtime::builder()
        .postgres_with(
            PgOptions::new(format!(
                "{url}?sslmode=verify-full&sslrootcert={}",
                other.display()
            ))
            .reconnect_for(Duration::from_secs(1)),
        )
        .register("hello", hello)
        .build()
        .err()
        .map(|err| err.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("certificate") || refused.contains("Certificate"),
        "{refused}"
    );
    // A missing root certificate file is a clear error too.
    let missing = Runtime::builder()
        .postgres_with(PgOptions::new(format!(
            "{url}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
        )))
        .build()
        .err()
        .map(|err| err.to_string())
        .unwrap_or_default();
    assert!(missing.contains("sslrootcert"), "{missing}");
}
