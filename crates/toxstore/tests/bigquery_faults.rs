//! Faults between the BigQuery backend and the real emulator: a
//! fault-injecting HTTP proxy on 127.0.0.1 answers 429, 500 and 503, cuts
//! responses in the middle, holds one past the client's timeout, lets only
//! part of a streaming insert through (reporting the rest in
//! `insertErrors`), and refuses the token. After each fault the job
//! completes, or a rerun completes it, with every text scored exactly once.
//!
//! Like `tests/bigquery.rs`, this needs `cargo xtask test`, which starts the
//! emulator and sets `TOXSCORE_BIGQUERY_EMULATOR`; without it the tests fail.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use serde_json::{Value, json};
use toxstore::bigquery::{BigQuery, BigQueryConfig, Credentials, RetryPolicy};
use toxstore::{Error, ScoreBatch, ScoreRow, Store, Tweet, UnscoredQuery};

const EMULATOR_URL_VAR: &str = "TOXSCORE_BIGQUERY_EMULATOR";
const PROJECT: &str = "test-project";
const CHECKPOINT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// A token the proxy refuses in one test; it must never appear in a message.
const TOKEN: &str = "ya29.fault-test-token-0123456789";
/// The client's request timeout, and how long the proxy holds the one
/// answer that must time out (longer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
const HOLD: Duration = Duration::from_secs(10);

fn emulator_address() -> String {
    let url = std::env::var(EMULATOR_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{EMULATOR_URL_VAR} is not set: the BigQuery tests need the emulator. \
             Run the tests with `cargo xtask test` (it installs and starts the emulator)"
        )
    });
    url.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

fn fresh_dataset() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("faults_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward it and return the answer.
    Pass,
    /// Answer this status without forwarding.
    Status(u16),
    /// Forward it, then send half the answer and close the connection.
    CutAfterForward,
    /// Forward it, then hold the answer past the client's timeout.
    HoldAfterForward,
    /// For `insertAll`: forward every other row and report the others as
    /// failed (`backendError`) in `insertErrors`.
    PartialInsert,
}

/// One request as received.
struct Request {
    head: Vec<String>,
    path: String,
    body: Vec<u8>,
}

type Plan = Box<dyn FnMut(usize, &str) -> Fault + Send>;

/// A proxy in front of the emulator, one thread per connection.
struct Proxy {
    url: String,
    faults_applied: Arc<Mutex<Vec<(usize, String, Fault)>>>,
    /// The Authorization header of every BigQuery request.
    authorizations: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// `plan(n, path)` picks the fault of the `n`th request (from 0).
    fn start(upstream: String, plan: Plan) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let plan = Arc::new(Mutex::new(plan));
        let counter = Arc::new(AtomicUsize::new(0));
        let faults_applied = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&faults_applied);
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&authorizations);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (plan, counter, log, seen, upstream) =
                    (Arc::clone(&plan), Arc::clone(&counter), Arc::clone(&log), Arc::clone(&seen), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &upstream, &plan, &counter, &log, &seen);
                });
            }
        });
        Self { url, faults_applied, authorizations }
    }

    fn faults(&self) -> Vec<Fault> {
        self.faults_applied.lock().expect("log").iter().map(|(_, _, fault)| *fault).collect()
    }
}

fn serve(
    mut client: TcpStream,
    upstream: &str,
    plan: &Mutex<Plan>,
    counter: &AtomicUsize,
    log: &Mutex<Vec<(usize, String, Fault)>>,
    authorizations: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let Some(request) = read_request(&client)? else { return Ok(()) };
    // The OAuth token endpoint of the service-account key in
    // `a_key_file_token_refused_names_the_key_file_and_setting`.
    if request.path == "/token" {
        let answer = json!({ "access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer" });
        return respond(&mut client, 200, answer.to_string().as_bytes());
    }
    let authorization = request.head.iter().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("authorization").then(|| value.trim().to_owned())
    });
    authorizations.lock().expect("log").push(authorization.unwrap_or_default());
    let number = counter.fetch_add(1, Ordering::SeqCst);
    let mut fault = (plan.lock().expect("plan"))(number, &request.path);
    if fault == Fault::PartialInsert && !request.path.ends_with("/insertAll") {
        fault = Fault::Pass;
    }
    if fault != Fault::Pass {
        log.lock().expect("log").push((number, request.path.clone(), fault));
    }
    match fault {
        Fault::Status(status) => {
            let body = json!({ "error": { "code": status, "message": format!("injected {status}"),
                "errors": [{ "reason": if status == 401 { "authError" } else { "backendError" }, "message": "injected" }] } });
            respond(&mut client, status, body.to_string().as_bytes())
        }
        Fault::Pass => {
            let (status, body) = forward(upstream, &request, None)?;
            respond(&mut client, status, &body)
        }
        Fault::CutAfterForward => {
            let (status, body) = forward(upstream, &request, None)?;
            write!(
                client,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )?;
            client.write_all(&body[..body.len() / 2])?;
            client.flush()?;
            client.shutdown(Shutdown::Both)
        }
        Fault::HoldAfterForward => {
            let (status, body) = forward(upstream, &request, None)?;
            std::thread::sleep(HOLD);
            respond(&mut client, status, &body)
        }
        Fault::PartialInsert => {
            let mut sent: Value = serde_json::from_slice(&request.body).expect("an insertAll body");
            let rows = sent["rows"].as_array().cloned().unwrap_or_default();
            let kept: Vec<Value> = rows.iter().step_by(2).cloned().collect();
            sent["rows"] = Value::Array(kept);
            let (status, body) = forward(upstream, &request, Some(sent.to_string().into_bytes()))?;
            if status != 200 {
                return respond(&mut client, status, &body);
            }
            let errors: Vec<Value> = (1..rows.len())
                .step_by(2)
                .map(|index| json!({ "index": index, "errors": [{ "reason": "backendError", "message": "injected row failure" }] }))
                .collect();
            let answer = json!({ "kind": "bigquery#tableDataInsertAllResponse", "insertErrors": errors });
            respond(&mut client, 200, answer.to_string().as_bytes())
        }
    }
}

fn read_request(stream: &TcpStream) -> std::io::Result<Option<Request>> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let path = head.first().and_then(|line| line.split_whitespace().nth(1)).unwrap_or("").to_owned();
    let length = head
        .iter()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok()).flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { head, path, body }))
}

/// Sends the request upstream (with `body` instead of its own when given)
/// and reads the whole answer.
fn forward(upstream: &str, request: &Request, body: Option<Vec<u8>>) -> std::io::Result<(u16, Vec<u8>)> {
    let body = body.unwrap_or_else(|| request.body.clone());
    let mut server = TcpStream::connect(upstream)?;
    let mut head = String::new();
    for (index, line) in request.head.iter().enumerate() {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if index > 0 && (name == "content-length" || name == "connection") {
            continue;
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    server.write_all(head.as_bytes())?;
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    let split = answer.windows(4).position(|window| window == b"\r\n\r\n").map_or(answer.len(), |at| at + 4);
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(502);
    let mut body = answer[split..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|window| window == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

fn respond(client: &mut TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    write!(
        client,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    client.write_all(body)?;
    client.flush()
}

async fn store_behind(proxy: &Proxy, dataset: &str, credentials: Credentials) -> BigQuery {
    let retry =
        RetryPolicy { max_attempts: 4, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(5) };
    let config = BigQueryConfig::new(Some(PROJECT.to_owned()), dataset, credentials)
        .with_endpoint(&proxy.url)
        .with_retry(retry)
        .with_request_timeout(REQUEST_TIMEOUT);
    BigQuery::connect(config).await.expect("connect through the proxy")
}

/// 45 tweets carrying 30 distinct texts.
fn tweets() -> Vec<Tweet> {
    (0..45)
        .map(|index| Tweet {
            status_id: 1000 + index,
            user_id: index % 7,
            status_text: format!("text number {}", index % 30),
            created_at: Some(1_600_000_000_000_000 + index),
        })
        .collect()
}

/// Imports, de-duplicates and scores everything, as `toxscore score` does:
/// pages of unscored texts, a batch of scores per page.
async fn run_job(store: &dyn Store) -> toxstore::Result<()> {
    store.migrate().await?;
    for batch in tweets().chunks(15) {
        store.import_tweets(batch).await?;
    }
    store.refresh_texts().await?;
    let table = toxstore::ModelTable::by_model("original").expect("the original model");
    loop {
        let page = store.unscored_texts(table, UnscoredQuery { after: None, limit: 8, shard: None }).await?;
        if page.is_empty() {
            return Ok(());
        }
        let rows: Vec<ScoreRow> = page
            .iter()
            .map(|text| ScoreRow {
                status_text_id: text.status_text_id,
                scores: vec![text.status_text_id as f64 / 64.0; table.columns.len()],
            })
            .collect();
        store.write_scores(ScoreBatch { table, checkpoint_sha256: CHECKPOINT, rows: &rows }).await?;
    }
}

/// Every text scored once, every status id exported once with its text's
/// scores, read straight from the emulator (no proxy).
async fn assert_scored_exactly_once(dataset: &str) {
    let direct =
        BigQuery::connect(BigQueryConfig::emulator(format!("http://{}", emulator_address()), PROJECT, dataset))
            .await
            .expect("connect to the emulator");
    let progress = direct.progress().await.expect("progress");
    assert_eq!((progress.statuses, progress.texts), (45, 30), "{progress:?}");
    let original = &progress.models[0];
    assert_eq!((original.scored, original.remaining), (30, 0), "{progress:?}");
    let table = &toxdedup::MODEL_TABLES[0];
    let exported: Vec<toxstore::ExportRow> = direct.export(table).try_collect().await.expect("export");
    let status_ids: Vec<i64> = exported.iter().map(|row| row.status_id).collect();
    assert_eq!(status_ids, (1000..1045).collect::<Vec<_>>(), "one export row per status id, in order");
    let texts: BTreeSet<i64> = exported.iter().map(|row| row.status_text_id).collect();
    assert_eq!(texts.len(), 30);
    for row in &exported {
        assert_eq!(row.scores, vec![row.status_text_id as f64 / 64.0; table.columns.len()], "status {}", row.status_id);
    }
}

/// Every other request meets a fault, in turn: 503, 429, 500, a response cut
/// in the middle after the emulator did the work, a partial streaming
/// insert, and once an answer held past the client's timeout. The backend's
/// retries carry the job through.
#[tokio::test]
async fn a_job_through_faults_scores_every_text_once() {
    let dataset = fresh_dataset();
    let mut held = false;
    let plan: Plan = Box::new(move |number, path| {
        if number % 2 == 1 {
            return Fault::Pass;
        }
        if path.ends_with("/insertAll") && path.contains("toxicity_scores") && !held {
            held = true;
            return Fault::HoldAfterForward;
        }
        match (number / 2) % 6 {
            0 => Fault::Status(503),
            1 => Fault::Status(429),
            2 => Fault::CutAfterForward,
            3 => Fault::PartialInsert,
            4 => Fault::Status(500),
            _ => Fault::Pass,
        }
    });
    let proxy = Proxy::start(emulator_address(), plan);
    let store = store_behind(&proxy, &dataset, Credentials::StaticToken(TOKEN.to_owned())).await;
    run_job(&store).await.expect("the retries carry the job through");
    let faults = proxy.faults();
    for fault in [
        Fault::Status(503),
        Fault::Status(429),
        Fault::Status(500),
        Fault::CutAfterForward,
        Fault::PartialInsert,
        Fault::HoldAfterForward,
    ] {
        assert!(faults.contains(&fault), "{fault:?} never happened: {faults:?}");
    }
    assert_scored_exactly_once(&dataset).await;
}

/// Faults that outlast the retries: the call fails with `Unavailable`, and a
/// rerun of the whole job, once the faults stop, completes it.
#[tokio::test]
async fn a_rerun_after_exhausted_retries_completes_the_job() {
    let dataset = fresh_dataset();
    // From the 20th request on, 503 until 40 requests have failed in a row.
    let plan: Plan = Box::new(|number, _| if (20..40).contains(&number) { Fault::Status(503) } else { Fault::Pass });
    let proxy = Proxy::start(emulator_address(), plan);
    let store = store_behind(&proxy, &dataset, Credentials::StaticToken(TOKEN.to_owned())).await;
    let error = run_job(&store).await.expect_err("the retries run out");
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    assert!(error.is_retryable());
    // Reruns, as a user would, until the faults stop (20 failed requests:
    // at most 5 runs of 4 attempts).
    let mut reruns = 0;
    while let Err(error) = run_job(&store).await {
        reruns += 1;
        assert!(error.is_retryable() && reruns <= 5, "rerun {reruns} failed: {error:?}");
    }
    assert_scored_exactly_once(&dataset).await;
}

/// A refused token stops the job at once with `Unauthenticated`, naming the
/// credentials to check and never the token; a rerun with good credentials
/// completes the job.
#[tokio::test]
async fn a_refused_token_is_reported_without_the_token_and_a_rerun_completes() {
    let dataset = fresh_dataset();
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&refuse);
    let plan: Plan = Box::new(move |_, path| {
        if flag.load(Ordering::SeqCst) && path.contains("toxicity_scores") { Fault::Status(401) } else { Fault::Pass }
    });
    let proxy = Proxy::start(emulator_address(), plan);
    let store = store_behind(&proxy, &dataset, Credentials::StaticToken(TOKEN.to_owned())).await;
    // Import and de-duplicate, then the token "expires" when scores are written.
    store.migrate().await.expect("migrate");
    store.import_tweets(&tweets()).await.expect("import");
    store.refresh_texts().await.expect("refresh");
    refuse.store(true, Ordering::SeqCst);
    let error = run_job(&store).await.expect_err("the token is refused");
    let message = format!("{error} / {error:?}");
    assert!(matches!(error, Error::Unauthenticated { .. }), "{error:?}");
    assert!(message.contains("token"), "the message points at the credentials: {message}");
    assert!(!message.contains(TOKEN), "the token leaked: {message}");
    assert_eq!(proxy.faults().len(), 1, "a refused token is not retried");
    refuse.store(false, Ordering::SeqCst);
    run_job(&store).await.expect("the rerun completes");
    assert_scored_exactly_once(&dataset).await;
}

/// A throwaway RSA key generated for this test (`openssl genpkey -algorithm
/// RSA`); it belongs to no account and grants nothing. The key file built
/// from it sends its token request to the proxy.
const THROWAWAY_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDE1jyfoO/9biWp\nBf7YB6AG3C4YuNOpNhzNIwEVfSPaN1/s30TV7EdTS7w0n/EZce540JcUWbOBLQch\nCXA92jq0wKggMDbUOoDxnoVYPqFA69xSgpBwtajWnJrD4Gdbn5jkB149/2Gk30rm\n6tAP91hvqfpzqpOqwYgYlAXLQRVIKLMdOIaDVr/XFfbKHIAm45FmBS5jLmOOSd52\ns2MH16NgoSlpVZPb1JApswSyZEdoscRpE/rdj2YKHd7GQLZbFTcLTRz/rECujLQT\nL/zYJqyqd3sRKpXMwPoQ68XS8rz3VjvMr+OFIvUMy6tbqUHMJ+YtzVkXORDwY1t0\nQvEdJgirAgMBAAECggEATb6EcVQilgmUTF822eKhHTSH7HHL//CEja1+txsXNxBa\nDffde1T4kvi93Fcz5iXu178jfQE0+hdr0muk7nksaMoTXatNbKOy3DwNVN5f2IGQ\nIvK41BucFTADnMwcZr7xp1cVrQ0aZwFe1zf1d+jtACW160t7SZ1pALQuWapaGoZv\nad5mRTPq+70TBaCU5j0hi3o8LskbKS9THpYT1swEHs/ue+iSrm6xQMO96zDWwBf6\nOxKGT+tS0Y7O89AlcjHykO4QV1EzEbzwegjmvSkLD4drzN8xxJ68ogK9dDqi90q7\nGCqYCIiMWfsAHMZ3PegahMbBBBtVm0RNKGJOiXPCGQKBgQDjJInpjiYiWz2fWQQr\n9AIqdzIyBP8YslF33gLpgl4INCSboTSYEEYpPHeljJjwg4SZiClImxAJYFROGRQa\nFyMQKdbWUIJZ6AGS0B0Jcs/KWIbNj1VYT1kE0lzoOUybe5TinuRmaJ4Omyn8kl2D\nsHMKNzH3bNmnKNagEh9+Q7/4DwKBgQDd2AwZ12jY59oiTmpC8VHudUJ85ZWfrBGY\n4zAhGNiHu2ARaHGKdPTk6NnKiu5H8T6rXh2L32eCl5f43sp4a8nVR8bTnxPNuZ4H\nA7Spp/rMCtjHz7dJiaAAZI0ma3jc4L53cWfBy6TJTZHMdU4ds0aQGV4ESVbmnRzz\nv73j2oNppQKBgQCoUepVBb6ilQRsMfXScGaue1faEzPKZFHUxtNXoQD3iVRbc7Fa\nwiyL4EA1kKPBD2TStUEKicXvfM/cc98emmikUKzgcha2cyO/XLM3zjnHE6UJbR7s\naxhnZ0/r0pI/Yevpp59PeFUwM7GAdiIQNVB6kH5ZgPMlWTD6u5NU6PW35wKBgGcY\n9Z64ziAnt+dDm/yaW+I/GnQi2iNHezIbOw3WlyKVQPM2H7Yh3oHXeQe5Az3p7p8D\ncSXE4Dz/qH/fQicuqLD2138XqcNs5PULktVZnKNg0xgg/2QsknA8SqC1R4kW5U1r\nJbYZpu5qnzxus6v32e4z686AKuOn1oGs9VnD/liFAoGBAJjLrxV3il/1Ul/JEhkc\nYNr/HsYbaYs7M3PrH0BBsKGXYSesWBby7YDtZMvgwCpGA8rk9HuF4Gc9qgMZclUY\n3m2lrQ3+jJGFUuGKQ9fELfKe3iUwHN2yAkNfFyRUC1oQHp/L+rzcdQReMwESJZ3J\nE7Le7sFDheYQP5BLvHZI4HFY\n-----END PRIVATE KEY-----\n";

/// The whole key-file path: a service-account key file whose token comes
/// from a local token endpoint, a project taken from the key file, and a
/// token refused by BigQuery. The message names the key file and the
/// GOOGLE_APPLICATION_CREDENTIALS setting, never the token.
#[tokio::test]
async fn a_key_file_token_refused_names_the_key_file_and_setting() {
    let dataset = fresh_dataset();
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&refuse);
    let plan: Plan = Box::new(move |_, _| if flag.load(Ordering::SeqCst) { Fault::Status(401) } else { Fault::Pass });
    let proxy = Proxy::start(emulator_address(), plan);
    let folder = tempfile::tempdir().expect("temporary folder");
    let key_path = folder.path().join("service-account.json");
    let key = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "throwaway",
        "private_key": THROWAWAY_PRIVATE_KEY,
        "client_email": "toxscore-test@test-project.iam.gserviceaccount.com",
        "client_id": "1",
        "auth_uri": format!("{}/auth", proxy.url),
        "token_uri": format!("{}/token", proxy.url),
    });
    std::fs::write(&key_path, key.to_string()).expect("write the key file");
    let retry =
        RetryPolicy { max_attempts: 4, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(5) };
    // No project given: it comes from the key file.
    let config = BigQueryConfig::new(None, &dataset, Credentials::ServiceAccountKeyFile(key_path.clone()))
        .with_endpoint(&proxy.url)
        .with_retry(retry);
    let store = BigQuery::connect(config).await.expect("connect with the key file");
    assert_eq!(store.project(), PROJECT);
    store.migrate().await.expect("the key file's token is accepted");
    let authorizations = proxy.authorizations.lock().expect("log").clone();
    assert!(
        !authorizations.is_empty() && authorizations.iter().all(|header| *header == format!("Bearer {TOKEN}")),
        "every request carries the key file's token: {authorizations:?}"
    );
    refuse.store(true, Ordering::SeqCst);
    let error = store.progress().await.expect_err("the token is refused");
    let message = format!("{error} / {error:?}");
    assert!(matches!(error, Error::Unauthenticated { .. }), "{error:?}");
    assert!(message.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{message}");
    assert!(message.contains(&key_path.display().to_string()), "{message}");
    assert!(!message.contains(TOKEN), "the token leaked: {message}");
    assert!(!message.contains("PRIVATE KEY"), "the key leaked: {message}");
}
