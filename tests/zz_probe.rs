#![allow(clippy::unwrap_used, missing_docs)]
mod common;
use common::{builder, journal_dir};
use ordo::Ctx;
async fn plain(ctx: Ctx, _: ()) -> Result<u32, String> {
    ctx.step("seven", || async { Ok::<_, String>(7) }).await
}
async fn named(ctx: Ctx, n: usize) -> Result<u32, String> {
    let name: String = (0..n)
        .map(|i| char::from(b'a' + ((i * 7919) % 26) as u8))
        .collect();
    ctx.step(&name, || async { Ok::<_, String>(1) }).await
}
#[test]
fn probe_long() {
    for (what, n) in [
        ("id", 1500usize),
        ("id", 2000),
        ("id", 2700),
        ("id", 3000),
        ("id", 9000),
    ] {
        let dir = journal_dir();
        let rt = builder(dir.path())
            .register("plain", plain)
            .register("named", named)
            .build()
            .unwrap();
        let good = rt.start::<_, u32, String>("plain", "good", ()).unwrap();
        let mut x: u64 = 88172645463325252;
        let id: String = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        let r = if what == "id" {
            rt.start::<_, u32, String>("plain", &id, ())
                .map(|h| rt.block_on(h.result()))
        } else {
            rt.start::<_, u32, String>("named", "n", n)
                .map(|h| rt.block_on(h.result()))
        };
        let g = rt.block_on(good.result());
        eprintln!(
            "{what} {n}: {:?} good={g:?}",
            r.map(|r| r.map_err(|e| e.to_string().chars().take(150).collect::<String>()))
        );
    }
}
