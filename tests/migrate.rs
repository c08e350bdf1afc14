//! `edgecount migrate` end to end: a second edgecount deployment plays the old service (its
//! CountAPI routes, `/get` and `/info`, are the ones CountAPI had), the real binary copies from it
//! into a fresh one through `POST /import`.

mod support;

use std::process::{Command, Output};

use serde_json::{json, Value};
use support::edge::{Edge, Kind, ADMIN_TOKEN};

fn migrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgecount"))
        .arg("migrate")
        .args(args)
        .env_remove("EDGECOUNT_ADMIN_TOKEN")
        .output()
        .expect("run edgecount migrate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn json_at(edge: &Edge, path: &str) -> (u16, Value) {
    let response = edge.get(path).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_from_a_countapi_compatible_service() {
    let old = Edge::start(Kind::Serve, &[]).await;
    let new = Edge::start(Kind::Serve, &[]).await;
    let created = old
        .get("/create?namespace=site&key=settings&value=5&enable_reset=1&update_lowerbound=-2&update_upperbound=3")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    for path in [
        "/hit/site/settings",
        "/hit/site/settings",
        "/hit/site/plain",
    ] {
        old.post(path).send().await.unwrap();
    }
    let from = old.url("");
    let to = new.url("");

    // The whole list is checked before anything is asked of anyone.
    let bad = migrate(&[
        "--from",
        &from,
        "--namespace",
        "site",
        "--keys",
        "ok-key,bad key",
        "--to",
        &to,
        "--admin-token",
        ADMIN_TOKEN,
    ]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("\"bad key\": not a valid key"),
        "{}",
        text(&bad.stderr)
    );
    let no_token = migrate(&[
        "--from",
        &from,
        "--namespace",
        "site",
        "--keys",
        "plain",
        "--to",
        &to,
    ]);
    assert!(!no_token.status.success());
    assert!(
        text(&no_token.stderr).contains("admin token"),
        "{}",
        text(&no_token.stderr)
    );
    assert_eq!(json_at(&new, "/get/site/plain").await.0, 404);

    // A missing key fails the run (exit status), after the others are imported.
    let run = migrate(&[
        "--from",
        &from,
        "--namespace",
        "site",
        "--keys",
        "settings,plain,missing",
        "--to",
        &to,
        "--admin-token",
        ADMIN_TOKEN,
    ]);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(!run.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("imported 2, skipped 0 (already there), failed 1"),
        "{stdout}"
    );
    assert!(stderr.contains("missing"), "{stderr}");
    for key in ["settings", "plain"] {
        let there = json_at(&old, &format!("/info/site/{key}")).await;
        let here = json_at(&new, &format!("/info/site/{key}")).await;
        assert_eq!(here, there, "{key}");
    }
    assert_eq!(
        json_at(&new, "/get/site/settings").await.1,
        json!({"value": 7})
    );
    let (_, info) = json_at(&new, "/info/site/settings").await;
    assert_eq!(
        (
            info["enable_reset"].clone(),
            info["update_upperbound"].clone()
        ),
        (json!(true), json!(3))
    );

    // Again: nothing changes, every counter is already there.
    let before = new.redis.snapshot();
    let again = migrate(&[
        "--from",
        &from,
        "--namespace",
        "site",
        "--keys",
        "settings,plain",
        "--to",
        &to,
        "--admin-token",
        ADMIN_TOKEN,
    ]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("imported 0, skipped 2"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(
        new.redis.snapshot().changes_since(&before),
        Vec::<String>::new()
    );

    // From a keys file into another namespace, as a file to import later.
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "# the pages\nsettings\n\nplain\n").unwrap();
    let out = dir.path().join("site.ndjson");
    let written = migrate(&[
        "--from",
        &from,
        "--namespace",
        "site",
        "--keys-file",
        keys.to_str().unwrap(),
        "--to-namespace",
        "moved",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    assert!(
        text(&written.stdout).contains("wrote 2 counters"),
        "{}",
        text(&written.stdout)
    );
    let ndjson = std::fs::read_to_string(&out).unwrap();
    assert_eq!(ndjson.lines().count(), 2);
    let imported: Value = new
        .post("/import")
        .bearer_auth(ADMIN_TOKEN)
        .body(ndjson)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(imported, json!({"imported": 2, "skipped": 0}));
    assert_eq!(
        json_at(&new, "/get/moved/plain").await.1,
        json!({"value": 1})
    );
}
