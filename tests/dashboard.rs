//! The dashboard (`RuntimeBuilder::dashboard`) as its users meet it: a browser loading
//! the workflow list and a workflow's timeline, a visitor without the token, a malformed
//! client, and the cancel and resume buttons.
//!
//! The runtime runs on the test's thread (`block_on`) while a visitor thread makes the
//! requests, as in a service whose runtime thread is driven all the time.
//!
//! The browser test needs Chromium (`chromium`, or `CHROMIUM=/path`). Without it, it
//! says it skipped, unless `ORDO_REQUIRE_CHROMIUM` is set (CI), which makes it fail.
//! With `ORDO_UPDATE_SCREENSHOT=1` it rewrites `docs/timeline.png`, the README's image.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ordo::{Ctx, Error, RetryPolicy, Runtime, RuntimeBuilder, Status};

const TOKEN: &str = "test-token-0123456789";

/// A simulated remote call.
async fn remote(ms: u64) {
    ordo::executor::sleep(Duration::from_millis(ms)).await;
}

/// The quickstart's order, shorter: three concurrent reservations, a durable cooling-off
/// sleep, a charge that fails its first attempt, a shipment.
async fn order(ctx: Ctx, items: Vec<String>) -> Result<String, String> {
    let holds = futures::future::join_all(items.into_iter().enumerate().map(|(i, item)| {
        ctx.step("reserve", move || async move {
            remote(90 - 30 * i as u64).await;
            Ok::<_, String>(format!("hold:{item}"))
        })
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    ctx.sleep(Duration::from_millis(40)).await;
    let tries = Rc::new(Cell::new(0u32));
    let policy = RetryPolicy::new(3).backoff(Duration::from_millis(20), 1.0);
    let payment = ctx
        .step_with("charge", policy, move || {
            let tries = Rc::clone(&tries);
            async move {
                tries.set(tries.get() + 1);
                remote(25).await;
                if tries.get() == 1 {
                    Err("card reader busy".to_string())
                } else {
                    Ok("paid 700 cents".to_string())
                }
            }
        })
        .await?;
    let shipping = ctx
        .step("ship", || async {
            remote(60).await;
            Ok::<_, String>("shipped by courier".to_string())
        })
        .await?;
    Ok(format!("{}; {payment}; {shipping}", holds.join(", ")))
}

/// Waits an hour (durably): a workflow to cancel.
async fn slow(ctx: Ctx, _: ()) -> Result<u32, String> {
    let one = ctx.step("one", || async { Ok::<_, String>(1u32) }).await?;
    ctx.sleep(Duration::from_millis(300)).await;
    Ok(one + 1)
}

fn builder(path: &Path) -> RuntimeBuilder {
    ordo_testkit::store::runtime(path)
        .register("order", order)
        .register("slow", slow)
}

fn with_dashboard(path: &Path) -> Runtime {
    builder(path)
        .dashboard("127.0.0.1:0")
        .dashboard_token(TOKEN)
        .build()
        .expect("the runtime and its dashboard start")
}

fn items() -> Vec<String> {
    ["book", "pen", "lamp"].map(String::from).to_vec()
}

/// Runs `visit` on a thread of its own while this thread drives `rt`, and returns what
/// it returned (re-raising its panic).
fn visiting<T: Send + 'static>(rt: &Runtime, visit: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = futures::channel::oneshot::channel::<()>();
    let visitor = std::thread::spawn(move || {
        let out = visit();
        // The runtime's thread may have stopped waiting already (a panic in it).
        let _ = done.send(());
        out
    });
    // Resolves when the visitor is done, or panicked (the sender is dropped).
    let _ = rt.block_on(finished);
    match visitor.join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Sends `raw` bytes as one request and reads the answer until the server closes.
fn exchange(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(raw)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

fn get(addr: SocketAddr, target: &str, headers: &str) -> Reply {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n");
    exchange(addr, raw.as_bytes()).expect("the dashboard answers")
}

fn post(addr: SocketAddr, target: &str, headers: &str, form: &str) -> Reply {
    let raw = format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n{headers}\r\n{form}",
        form.len()
    );
    exchange(addr, raw.as_bytes()).expect("the dashboard answers")
}

/// Runs an order until it has recorded its three reservations and "crashes" (the first
/// runtime halts), then recovers it in a runtime with a dashboard and lets it finish,
/// so its timeline holds both replayed and live steps.
fn crashed_and_recovered_order(path: &Path) -> Runtime {
    {
        // Commits: the start, then each reservation as it finishes.
        let rt = builder(path).halt_after_commits(4).build().expect("opens");
        let handle = rt
            .start::<_, String, String>("order", "order-42", items())
            .expect("starts");
        assert!(matches!(
            rt.block_on(handle.result()),
            Err(Error::Stopped { .. })
        ));
    }
    let rt = with_dashboard(path);
    let report = rt.recover().expect("recovers");
    assert_eq!(report.resumed, vec!["order-42".to_string()]);
    let handle = rt.handle::<String, String>("order-42").expect("recorded");
    let receipt = rt.block_on(handle.result()).expect("runs");
    assert!(receipt.is_ok(), "{receipt:?}");
    rt
}

/// The Chromium binary, if there is one.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let names = ["chromium", "chromium-browser", "google-chrome", "chrome"];
    std::env::split_paths(&std::env::var_os("PATH")?)
        .flat_map(|dir| names.map(|name| dir.join(name)))
        .find(|path| path.is_file())
}

/// Runs headless Chromium with `args` and returns its standard output; fails the test
/// if it does not end within a minute.
fn run_chromium(binary: &Path, profile: &Path, args: &[&str]) -> String {
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        drop(stdout.read_to_string(&mut out));
        out
    });
    let began = Instant::now();
    loop {
        if child.try_wait().expect("waitable").is_some() {
            break;
        }
        if began.elapsed() > Duration::from_secs(60) {
            drop(child.kill());
            panic!("chromium {args:?} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("reader")
}

/// The attribute `name` of every `<g class="step">` in `dom`, in document order.
fn step_attributes(dom: &str, name: &str) -> Vec<String> {
    dom.split("<g class=\"step\"")
        .skip(1)
        .map(|group| {
            let start = group
                .find(&format!("{name}=\""))
                .map(|at| at + name.len() + 2)
                .expect("every step has the attribute");
            group[start..].split('"').next().unwrap_or("").to_string()
        })
        .collect()
}

#[test]
fn a_browser_shows_the_list_and_an_orders_timeline() {
    let Some(binary) = chromium() else {
        if std::env::var_os("ORDO_REQUIRE_CHROMIUM").is_some() {
            panic!("ORDO_REQUIRE_CHROMIUM is set but no chromium was found (install Debian's `chromium`)");
        }
        eprintln!("SKIPPED a_browser_shows_the_list_and_an_orders_timeline: no chromium on PATH");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = crashed_and_recovered_order(dir.path());
    let hostile = "<script>alert(1)</script>";
    let handle = rt
        .start::<_, u32, String>("slow", hostile, ())
        .expect("starts");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(2));
    let url = rt.dashboard_url().expect("on");
    let base = url.split("/?").next().expect("a base").to_string();
    let profile = tempfile::tempdir().expect("tempdir");
    let screenshot_dir = tempfile::tempdir().expect("tempdir");
    let update = std::env::var_os("ORDO_UPDATE_SCREENSHOT").is_some();
    let screenshot = if update {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/timeline.png")
    } else {
        screenshot_dir.path().join("timeline.png")
    };
    let shot = screenshot.clone();
    let (list, page) = visiting(&rt, move || {
        let list = run_chromium(&binary, profile.path(), &["--dump-dom", &url]);
        let page_url = format!("{base}/workflow?id=order-42&token={TOKEN}");
        let page = run_chromium(&binary, profile.path(), &["--dump-dom", &page_url]);
        let shot_arg = format!("--screenshot={}", shot.display());
        run_chromium(
            &binary,
            profile.path(),
            &[&shot_arg, "--window-size=1040,1180", &page_url],
        );
        (list, page)
    });

    // The list: both workflows, linked, with their status; the hostile id as text.
    assert!(list.contains(">order-42</a>"), "{list}");
    assert!(list.contains("succeeded (2)"), "{list}");
    assert!(list.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!list.contains(hostile), "an id is never markup");

    // The workflow page: its steps in delivery order, as the journal recorded them.
    let recorded = rt.journal().completions("order-42").expect("readable");
    let seqs = step_attributes(&page, "data-seq");
    let expected: Vec<String> = recorded.iter().map(|c| c.seq.to_string()).collect();
    assert_eq!(seqs, expected, "one timeline row per completion, by seq");
    let names = step_attributes(&page, "data-name");
    assert_eq!(names.iter().filter(|n| *n == "reserve").count(), 3);
    assert!(names.contains(&"charge".to_string()) && names.contains(&"ship".to_string()));
    // The retried charge shows its two attempts.
    let attempts = step_attributes(&page, "data-attempts");
    let charge = names.iter().position(|n| n == "charge").expect("charged");
    assert_eq!(attempts[charge], "2");
    // The reservations were recorded before the crash (replayed here); the charge and
    // the shipment ran live after the recovery.
    let origins = step_attributes(&page, "data-recorded");
    for (name, origin) in names.iter().zip(&origins) {
        match name.as_str() {
            "reserve" => assert_eq!(origin, "earlier", "{name}"),
            "charge" | "ship" => assert_eq!(origin, "live", "{name}"),
            _ => {} // the sleep's internal steps: either, by timing
        }
    }
    // Input and output, decoded (a Vec<String> and a String).
    assert!(page.contains("[\"book\", \"pen\", \"lamp\"]"), "{page}");
    assert!(page.contains("shipped by courier"));

    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG image");
    assert!(
        png.len() > 10_000,
        "a picture, not a blank: {} bytes",
        png.len()
    );
}

#[test]
fn requests_without_the_token_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = with_dashboard(dir.path());
    let addr = rt.dashboard_addr().expect("on");
    let handle = rt
        .start::<_, u32, String>("slow", "s-1", ())
        .expect("starts");
    let replies = visiting(&rt, move || {
        [
            get(addr, "/", ""),
            get(addr, "/workflow?id=s-1", ""),
            get(addr, "/?token=wrong-token-0123456789", ""),
            get(addr, "/", "Authorization: Bearer nope\r\n"),
            get(
                addr,
                "/",
                &format!("Cookie: ordo_dashboard_token={TOKEN}x\r\n"),
            ),
            // A cookie alone cannot post: another site could make a browser send it.
            post(
                addr,
                "/cancel",
                &format!("Cookie: ordo_dashboard_token={TOKEN}\r\n"),
                "id=s-1",
            ),
            // The token as a query parameter does not count for a post either.
            post(addr, &format!("/cancel?token={TOKEN}"), "", "id=s-1"),
        ]
    });
    for reply in &replies {
        assert_eq!(reply.status, 401, "{reply:?}");
        assert!(
            !reply.body.contains("s-1"),
            "nothing of the journal is shown"
        );
    }
    assert_eq!(handle.status().expect("readable"), Status::Pending);
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(2));

    // With the token: by query (which sets the cookie), cookie, or header.
    let ok = visiting(&rt, move || {
        [
            get(addr, &format!("/?token={TOKEN}"), ""),
            get(
                addr,
                "/",
                &format!("Cookie: a=b; ordo_dashboard_token={TOKEN}\r\n"),
            ),
            get(addr, "/", &format!("Authorization: Bearer {TOKEN}\r\n")),
        ]
    });
    for reply in &ok {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply.body.contains(">s-1</a>"), "{reply:?}");
    }
    assert!(ok[0].head.contains(&format!(
        "Set-Cookie: ordo_dashboard_token={TOKEN}; Path=/; HttpOnly; SameSite=Strict"
    )));
}

#[test]
fn a_random_token_is_in_the_url_and_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = builder(dir.path())
        .dashboard("127.0.0.1:0")
        .build()
        .expect("starts");
    let url = rt.dashboard_url().expect("on");
    let token = url.split("token=").nth(1).expect("a token").to_string();
    assert!(token.len() >= 32, "{url}");
    let addr = rt.dashboard_addr().expect("on");
    let (with, without) = visiting(&rt, move || {
        (
            get(addr, &format!("/?token={token}"), ""),
            get(addr, "/", ""),
        )
    });
    assert_eq!((with.status, without.status), (200, 401));
    let other = builder(tempfile::tempdir().expect("tempdir").path())
        .dashboard("127.0.0.1:0")
        .build()
        .expect("starts");
    assert_ne!(
        other.dashboard_url(),
        rt.dashboard_url(),
        "each runtime its own token"
    );
}

#[test]
fn ids_and_values_are_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = with_dashboard(dir.path());
    let addr = rt.dashboard_addr().expect("on");
    let hostile = "<script>alert('x')</script>&\"";
    let handle = rt
        .start::<_, String, String>("order", hostile, vec![hostile.to_string()])
        .expect("starts");
    rt.block_on(handle.result())
        .expect("runs")
        .expect("ordered");
    let target = format!("/workflow?id={}", encode(hostile));
    let (list, page) = visiting(&rt, move || {
        let auth = format!("Authorization: Bearer {TOKEN}\r\n");
        (get(addr, "/?q=script", &auth), get(addr, &target, &auth))
    });
    assert_eq!((list.status, page.status), (200, 200), "{page:?}");
    for body in [&list.body, &page.body] {
        assert!(!body.contains("<script>alert"), "{body}");
        assert!(body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
    }
    // Its input and the reservation's value hold the id too: escaped as well.
    assert!(page.body.contains("hold:&lt;script&gt;"), "{}", page.body);
}

/// Percent-encodes `text` for a query.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn malformed_requests_do_not_disturb_the_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = with_dashboard(dir.path());
    let addr = rt.dashboard_addr().expect("on");
    let first = rt
        .start::<_, String, String>("order", "before", items())
        .expect("starts");
    let statuses = visiting(&rt, move || {
        let mut statuses = Vec::new();
        // Garbage bytes, a request line of one word, a header without a colon.
        for raw in [
            &b"\x00\xff\x13garbage\r\n\r\n"[..],
            b"HELLO\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ] {
            statuses.push(exchange(addr, raw).map(|r| r.status).unwrap_or(0));
        }
        // An oversized header: refused once 16 KiB are read (the connection may be reset
        // while the rest is still being sent).
        let mut huge = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 1 << 20));
        huge.extend_from_slice(b"\r\n\r\n");
        statuses.push(exchange(addr, &huge).map(|r| r.status).unwrap_or(431));
        // Clients that leave: mid-request, and before sending anything.
        for partial in [&b"GET /?token="[..], b""] {
            let mut stream = TcpStream::connect(addr).expect("connects");
            stream.write_all(partial).expect("writes");
            drop(stream);
        }
        // A client that announces a body and never sends it, then leaves.
        let mut stream = TcpStream::connect(addr).expect("connects");
        stream
            .write_all(b"POST /cancel HTTP/1.1\r\nContent-Length: 100\r\n\r\nid=")
            .expect("writes");
        drop(stream);
        statuses
    });
    assert_eq!(statuses, vec![400, 400, 400, 413, 400, 431]);
    // The runtime goes on: the order started before finishes, a new one too, and the
    // dashboard still answers.
    assert!(rt.block_on(first.result()).expect("runs").is_ok());
    let after = rt
        .start::<_, String, String>("order", "after", items())
        .expect("starts");
    assert!(rt.block_on(after.result()).expect("runs").is_ok());
    let list = visiting(&rt, move || {
        get(addr, "/", &format!("Authorization: Bearer {TOKEN}\r\n"))
    });
    assert_eq!(list.status, 200);
    assert!(list.body.contains(">before</a>") && list.body.contains(">after</a>"));
}

#[test]
fn cancel_and_resume_buttons_steer_a_workflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = with_dashboard(dir.path());
    let addr = rt.dashboard_addr().expect("on");
    let handle = rt
        .start::<_, u32, String>("slow", "s-1", ())
        .expect("starts");
    let (page, cancelled) = visiting(&rt, move || {
        let auth = format!("Authorization: Bearer {TOKEN}\r\n");
        let page = get(addr, "/workflow?id=s-1", &auth);
        (
            page,
            post(addr, "/cancel", "", &format!("id=s-1&token={TOKEN}")),
        )
    });
    assert!(
        page.body.contains("id=\"cancel\""),
        "a pending workflow has a cancel button"
    );
    assert_eq!(cancelled.status, 303, "{cancelled:?}");
    assert!(cancelled.head.contains("Location: /workflow?id=s-1"));
    assert!(matches!(
        rt.block_on(handle.result()),
        Err(Error::Cancelled { .. })
    ));
    assert_eq!(
        rt.journal()
            .workflow("s-1")
            .expect("readable")
            .map(|w| w.status),
        Some(Status::Cancelled)
    );

    let (page, resumed) = visiting(&rt, move || {
        let auth = format!("Authorization: Bearer {TOKEN}\r\n");
        let page = get(addr, "/workflow?id=s-1", &auth);
        (page, post(addr, "/resume", &auth, "id=s-1"))
    });
    assert!(page.body.contains("id=\"resume\"") && !page.body.contains("id=\"cancel\""));
    assert_eq!(resumed.status, 303, "{resumed:?}");
    let handle = rt.handle::<u32, String>("s-1").expect("recorded");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(2));

    // A finished workflow cannot be resumed: the page says why.
    let refused = visiting(&rt, move || {
        post(
            addr,
            "/resume",
            &format!("Authorization: Bearer {TOKEN}\r\n"),
            "id=s-1",
        )
    });
    assert_eq!(refused.status, 500);
    assert!(refused.body.contains("s-1"), "{refused:?}");
}

#[test]
fn non_loopback_addresses_are_refused_unless_allowed() {
    let refused = Runtime::builder()
        .temporary()
        .dashboard("0.0.0.0:0")
        .build();
    let Err(Error::Dashboard { addr, reason }) = refused else {
        panic!("expected a dashboard error");
    };
    assert_eq!(addr, "0.0.0.0:0");
    assert!(reason.contains("dashboard_allow_remote"), "{reason}");
    let garbage = Runtime::builder()
        .temporary()
        .dashboard("not an address")
        .build();
    assert!(matches!(garbage, Err(Error::Dashboard { .. })));
}
