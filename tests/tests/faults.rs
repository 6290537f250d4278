//! Faults against the four filters deployed together (the soak's
//! deployment: mTLS, principal-authz, header-router, retry-hints, a mirror
//! cleaned by mirror-sanitizer upstream), in the real Envoy 1.40 with two
//! workers: a dead, slow or resetting shadow; a primary that resets; clients
//! that abort mid-body; headers and bodies at the limits and one past them;
//! a body that trickles in byte by byte; and a module that traps.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::fault_upstream::{dead_address, Fault, FaultyUpstream};
use e2e::soak::backend::{Backend, BackendScript, SOAK_ID};
use e2e::soak::deployment::{Deployment, Options, Upstreams, RETRY_MAX_BODY, SANITIZER_MAX_BODY};
use e2e::soak::memory;
use e2e::{wasm_module, Request, Response, Script, Upstream, WasmFilter};
use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

fn backend(identity: &str, fail_half: bool) -> Backend {
    Backend::start(BackendScript { identity: identity.into(), fail_half, forbidden: Vec::new() }).unwrap()
}

/// The deployment with both primary sides at `primary` and the copy at `shadow`.
fn deploy(primary: SocketAddr, shadow: SocketAddr, options: &Options) -> Deployment {
    Deployment::start(Upstreams { stable: primary, canary: primary, shadow }, options).unwrap()
}

fn send(d: &Deployment, request: &Request) -> Result<Response, e2e::KitError> {
    d.pki.send(d.envoy.listener(), Some(&d.caller("web").unwrap().credential), request)
}

fn order(n: u64) -> Request {
    Request::post("/orders", format!(r#"{{"user_id":"u-{n}","card":"4111 1111 1111 1111","qty":{n}}}"#))
        .header("content-type", "application/json")
        .header(SOAK_ID, &n.to_string())
}

fn stat(d: &Deployment, name: &str) -> u64 {
    d.envoy.stat(name).unwrap().unwrap_or(0)
}

fn metric(d: &Deployment, name: &str) -> u64 {
    d.envoy.wasm_metric(name).unwrap().unwrap_or(0)
}

/// No filter reported an error, and nothing trapped.
fn no_filter_failed(d: &Deployment) {
    for f in ["principal_authz", "header_router", "retry_hints", "mirror_sanitizer"] {
        assert_eq!(metric(d, &format!("{f}.errors")), 0, "{f} counted errors");
    }
    let log = d.envoy.log();
    let bad: Vec<&str> = log.lines().filter(|l| l.contains("[critical]") || l.contains("Uncaught") || l.contains("panicked")).collect();
    assert!(bad.is_empty(), "trap or panic logged: {bad:?}");
}

/// Mirrored GETs and POSTs while the shadow is at `shadow`: each primary
/// answer, and how long it took.
fn mirrored_traffic(shadow: SocketAddr) -> (Deployment, Backend, Vec<(u16, Duration)>) {
    let primary = backend("stable", false);
    let d = deploy(primary.addr(), shadow, &Options::default());
    let mut seen = Vec::new();
    for n in 0..10 {
        for request in [order(n), Request::get(&format!("/orders/{n}")).header(SOAK_ID, &(100 + n).to_string())] {
            let started = Instant::now();
            let status = send(&d, &request).unwrap().status;
            seen.push((status, started.elapsed()));
        }
    }
    (d, primary, seen)
}

fn assert_primary_unharmed(what: &str, seen: &[(u16, Duration)], primary: &Backend) {
    let mut took: Vec<Duration> = seen.iter().map(|(_, t)| *t).collect();
    took.sort();
    println!("{what}: primary answers {:?}, median {:?}, slowest {:?}", seen.iter().map(|(s, _)| s).collect::<Vec<_>>(), took[took.len() / 2], took.last().unwrap());
    assert!(seen.iter().all(|(s, _)| *s == 200), "{what}: every primary answered 200");
    assert_eq!(primary.attempts().len(), seen.len(), "{what}: every primary reached its backend once");
    // The copy is fire-and-forget: no primary waits for it (the slow shadow takes 10 s).
    assert!(took.iter().all(|t| *t < Duration::from_secs(3)), "{what}: a primary waited for its copy: {took:?}");
}

#[test]
fn a_dead_shadow_leaves_the_primary_as_it_was_and_is_counted() {
    let (d, primary, seen) = mirrored_traffic(dead_address().unwrap());
    assert_primary_unharmed("dead shadow", &seen, &primary);
    thread::sleep(Duration::from_millis(500));
    let failed = stat(&d, "cluster.shadow.upstream_cx_connect_fail");
    println!("shadow cluster: upstream_cx_connect_fail {failed}, upstream_rq_pending_failure_eject {}", stat(&d, "cluster.shadow.upstream_rq_pending_failure_eject"));
    assert!(failed >= 20, "each of the 20 copies failed to connect, counted by Envoy: {failed}");
    no_filter_failed(&d);
}

#[test]
fn a_slow_shadow_leaves_the_primary_as_it_was_and_times_out_counted() {
    let shadow = Upstream::start(Script::ok("shadow").with_delay(Duration::from_secs(10))).unwrap();
    let (d, primary, seen) = mirrored_traffic(shadow.addr());
    assert_primary_unharmed("slow shadow", &seen, &primary);
    // The copy gets the route's timeout (5 s, from retry-hints).
    let deadline = Instant::now() + Duration::from_secs(15);
    while stat(&d, "cluster.shadow.upstream_rq_timeout") < 20 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(stat(&d, "cluster.shadow.upstream_rq_timeout"), 20, "each copy timed out, counted by Envoy");
    assert_eq!(metric(&d, "mirror_sanitizer.shadow.sanitized"), 20, "each copy was sanitized before it left");
    no_filter_failed(&d);
}

#[test]
fn a_shadow_that_resets_mid_request_leaves_the_primary_as_it_was_and_is_counted() {
    let shadow = FaultyUpstream::start(Fault::ResetAfterHead { body_bytes: 10 }).unwrap();
    let (d, primary, seen) = mirrored_traffic(shadow.addr());
    assert_primary_unharmed("resetting shadow", &seen, &primary);
    thread::sleep(Duration::from_millis(500));
    let resets = stat(&d, "cluster.shadow.upstream_cx_destroy_remote_with_active_rq");
    println!("shadow cluster: {} copies reached it, upstream_cx_destroy_remote_with_active_rq {resets}, upstream_rq_5xx {}", shadow.requests(), stat(&d, "cluster.shadow.upstream_rq_5xx"));
    assert_eq!(shadow.requests(), 20, "every copy reached the shadow");
    assert_eq!(resets, 20, "and each reset was counted by Envoy");
    no_filter_failed(&d);
}

#[test]
fn a_primary_that_resets_mid_response_cuts_only_that_answer() {
    let faulty = FaultyUpstream::start(Fault::ResetMidResponse).unwrap();
    let shadow = backend("shadow", false);
    let d = deploy(faulty.addr(), shadow.addr(), &Options::default());
    for n in 0..10 {
        // The head (200) went out before the reset: the client gets a cut body.
        let err = send(&d, &Request::get(&format!("/catalog/items/{n}"))).err();
        assert!(err.is_some(), "a cut response is not a whole one");
    }
    assert_eq!(faulty.requests(), 10, "not retried: the response had begun");
    // Envoy closes each cut connection. The canary split sends about one in
    // ten of these requests to the canary cluster (the same backend here), so
    // both clusters are counted; a close is "remote" unless the client's own
    // close wins the race.
    let both = |name: &str| stat(&d, &format!("cluster.stable.{name}")) + stat(&d, &format!("cluster.canary.{name}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while both("upstream_cx_destroy") < 10 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    println!(
        "primary resets: upstream_cx_destroy {} (remote {}, with an active request {}), active {}",
        both("upstream_cx_destroy"),
        both("upstream_cx_destroy_remote"),
        both("upstream_cx_destroy_remote_with_active_rq"),
        both("upstream_cx_active")
    );
    assert_eq!(both("upstream_cx_destroy"), 10, "each cut connection closed by Envoy");
    assert_eq!(both("upstream_cx_active"), 0, "none left open");
    assert_eq!(metric(&d, "principal_authz.allowed"), 10);
    assert_eq!(metric(&d, "retry_hints.hinted"), 10);
    no_filter_failed(&d);
}

#[test]
fn a_primary_that_closes_while_the_body_arrives_gets_a_503_with_retry_after() {
    let faulty = FaultyUpstream::start(Fault::ResetAfterHead { body_bytes: 1000 }).unwrap();
    let shadow = backend("shadow", false);
    let d = deploy(faulty.addr(), shadow.addr(), &Options::default());
    let body = format!(r#"{{"note":"{}"}}"#, "x".repeat(200_000));
    for _ in 0..5 {
        let post = Request::post("/catalog/reviews", body.clone()).header("content-type", "application/json");
        let response = send(&d, &post).unwrap();
        assert_eq!(response.status, 503, "{}", response.body_text());
        assert_eq!(response.header("retry-after"), Some("1"), "a POST without key is not retried, and the client is told when to come back");
    }
    assert_eq!(faulty.requests(), 5, "each POST tried once");
    assert_eq!(metric(&d, "retry_hints.skipped_unsafe"), 5);
    assert_eq!(metric(&d, "retry_hints.retry_after_added"), 5);
    no_filter_failed(&d);
}

/// Sends a mirrored POST's head and `sent` of its `declared` body bytes, then hangs up.
fn abort_mid_body(d: &Deployment, declared: usize, sent: usize) {
    let mut stream = d.pki.connect(d.envoy.listener(), Some(&d.caller("web").unwrap().credential)).unwrap();
    let head = format!("POST /orders HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n");
    let mut body = br#"{"user_id":"u-1","note":""#.to_vec();
    body.resize(sent, b'x');
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    stream.flush().unwrap();
    thread::sleep(Duration::from_millis(5));
    drop(stream);
}

fn idle(d: &Deployment) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while (stat(d, "http.ingress.downstream_rq_active") > 0 || stat(d, "cluster.shadow.upstream_rq_active") > 0) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clients_aborting_mirrored_posts_mid_body_leave_no_state_behind() {
    let (primary, shadow) = (backend("stable", false), backend("shadow", false));
    let d = deploy(primary.addr(), shadow.addr(), &Options::default());
    // 40 KiB of a declared 60 KiB body: a copy held past its stream would
    // keep 40 KiB of linear memory each, 16 MB over 400 aborts.
    let (declared, sent) = (60 * 1024, 40 * 1024);
    for _ in 0..50 {
        abort_mid_body(&d, declared, sent);
    }
    idle(&d);
    let before = memory::sample(d.envoy.pid(), Duration::ZERO);
    for _ in 0..400 {
        abort_mid_body(&d, declared, sent);
    }
    idle(&d);
    let after = memory::sample(d.envoy.pid(), Duration::ZERO);
    println!("400 aborted mirrored POSTs: RSS {} -> {} kB, Wasm linear memory {} -> {} kB in {} -> {} VMs", before.rss_kb, after.rss_kb, before.wasm_kb, after.wasm_kb, before.wasm_memories, after.wasm_memories);
    assert_eq!(stat(&d, "http.ingress.downstream_rq_active"), 0, "no stream left open");
    assert_eq!(stat(&d, "cluster.shadow.upstream_rq_active"), 0, "no copy left open");
    assert_eq!(after.wasm_memories, before.wasm_memories, "no VM reloaded or added");
    assert!(after.wasm_kb <= before.wasm_kb + 1024, "Wasm memory flat: {} -> {} kB", before.wasm_kb, after.wasm_kb);
    assert!(after.rss_kb <= before.rss_kb + 8 * 1024, "RSS flat: {} -> {} kB", before.rss_kb, after.rss_kb);
    // And the next mirrored POST goes through whole, its copy sanitized.
    let response = send(&d, &order(7)).unwrap();
    assert_eq!(response.status, 200);
    thread::sleep(Duration::from_millis(300));
    assert!(shadow.attempts().contains_key(&7), "the copy arrived");
    no_filter_failed(&d);
}

/// A GET to the mirrored route with `extra` headers besides the ones the
/// kit sends (host, x-soak-id).
fn with_headers(extra: Vec<(String, String)>) -> Request {
    let mut request = Request::get("/orders/1").header(SOAK_ID, "1");
    request.headers.extend(extra);
    request
}

#[test]
fn headers_at_envoys_limits_pass_and_one_past_them_is_refused_by_envoy() {
    let (primary, shadow) = (backend("stable", false), backend("shadow", false));
    let d = deploy(primary.addr(), shadow.addr(), &Options::default());
    // Envoy's defaults: 100 headers (the kit sends host, x-soak-id and
    // connection besides these), and 60 KiB of headers, counted as the
    // names and values of the header map, pseudo-headers included (found:
    // with this request line and these headers, one of 61,355 bytes is the
    // largest accepted).
    let count = |n: usize| with_headers((0..n).map(|i| (format!("x-h{i}"), format!("v{i}"))).collect());
    let at = send(&d, &count(97)).unwrap();
    assert_eq!(at.status, 200, "100 headers: {}", at.body_text());
    let past = send(&d, &count(98)).unwrap();
    assert_eq!(past.status, 431, "101 headers: refused by Envoy");
    // Size: one large header filling the head up to 60 KiB.
    let size = |n: usize| with_headers(vec![("x-big".to_string(), "a".repeat(n))]);
    let at = send(&d, &size(61_355)).unwrap();
    assert_eq!(at.status, 200, "60 KiB: {}", at.body_text());
    let past = send(&d, &size(61_356)).unwrap();
    assert_eq!(past.status, 431, "60 KiB and one byte: refused by Envoy");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(primary.attempts().get(&1).map(|a| a.statuses.len()), Some(2), "the two at the limit reached the backend, the others nothing");
    assert_eq!(metric(&d, "principal_authz.allowed"), 2, "only requests Envoy accepted reached the filters");
    assert_eq!(metric(&d, "mirror_sanitizer.shadow.sanitized"), 2, "both copies sanitized");
    no_filter_failed(&d);
}

/// A JSON body of exactly `size` bytes.
fn json_of_size(size: usize) -> String {
    let frame = r#"{"user_id":"u-1","card":"4111 1111 1111 1111","pad":""}"#;
    format!(r#"{{"user_id":"u-1","card":"4111 1111 1111 1111","pad":"{}"}}"#, "p".repeat(size - frame.len()))
}

#[test]
fn bodies_at_each_filters_limit_and_one_byte_over() {
    let (primary, shadow) = (backend("stable", true), backend("shadow", false));
    let d = deploy(primary.addr(), shadow.addr(), &Options::default());
    // One request at a time against a backend failing every other attempt:
    // attempts alternate 503, 200, 503, … whoever sends them.
    // retry-hints: a PUT up to maxRetryBodyBytes is retried, one byte more is not.
    let put = |size: usize, n: u64| Request {
        body: json_of_size(size).into_bytes(),
        ..Request::new("PUT", "/catalog/items/1").header("content-type", "application/json").header(SOAK_ID, &n.to_string())
    };
    assert_eq!(send(&d, &put(RETRY_MAX_BODY, 1)).unwrap().status, 200, "503 then retried");
    let response = send(&d, &put(RETRY_MAX_BODY + 1, 2)).unwrap();
    assert_eq!(response.status, 503, "not retried");
    assert_eq!(response.header("retry-after"), Some("1"));
    let attempts = primary.attempts();
    assert_eq!((attempts[&1].statuses.as_slice(), attempts[&2].statuses.as_slice()), (&[503, 200][..], &[503][..]));
    assert_eq!((metric(&d, "retry_hints.hinted"), metric(&d, "retry_hints.skipped_unsafe")), (1, 1));
    // mirror-sanitizer: a copy up to maxBodyBytes is sanitized, one byte
    // more is dropped. The primaries get the alternation's answers: 200,
    // then a 503 not retried (that body is over retry-hints' limit too).
    for (size, n, status) in [(SANITIZER_MAX_BODY, 3u64, 200), (SANITIZER_MAX_BODY + 1, 4, 503)] {
        let body = json_of_size(size);
        assert_eq!(body.len(), size);
        let post = Request::post("/orders", body).header("content-type", "application/json").header(SOAK_ID, &n.to_string()).header("idempotency-key", &format!("k{n}"));
        assert_eq!(send(&d, &post).unwrap().status, status, "the primary of {size} bytes, attempt {n} of the alternation");
    }
    thread::sleep(Duration::from_millis(500));
    assert_eq!(metric(&d, "mirror_sanitizer.shadow.sanitized"), 1, "the body at the limit");
    assert_eq!(metric(&d, "mirror_sanitizer.shadow.dropped_oversize"), 1, "the body one byte over");
    assert_eq!(shadow.attempts().len(), 2, "both copies went on (one without its body)");
    assert_eq!(primary.attempts()[&3].statuses, vec![200], "bodies over the sanitizer's limit reach the primary whole");
    no_filter_failed(&d);
}

#[test]
fn a_body_that_trickles_in_one_byte_at_a_time_arrives_whole_and_its_copy_sanitized() {
    let primary = Upstream::start(Script::ok("stable")).unwrap();
    let shadow = Upstream::start(Script::ok("shadow")).unwrap();
    let d = deploy(primary.addr(), shadow.addr(), &Options::default());
    let body = r#"{"user_id":"u-42","password":"hunter2","card":"4111 1111 1111 1111","items":[{"sku":"A-1","qty":2}]}"#;
    let mut stream = d.pki.connect(d.envoy.listener(), Some(&d.caller("web").unwrap().credential)).unwrap();
    let head = format!("POST /orders HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).unwrap();
    for byte in body.as_bytes() {
        stream.write_all(&[*byte]).unwrap();
        stream.flush().unwrap();
        thread::sleep(Duration::from_millis(3));
    }
    let response = e2e::http::read_message(&mut std::io::BufReader::new(&mut stream), true).unwrap().unwrap();
    assert_eq!(response.start[1], "200");
    let primary_seen = primary.wait_for(1, Duration::from_secs(5)).unwrap();
    assert_eq!(primary_seen[0].body_text(), body, "the primary gets the body byte for byte");
    let copy = &shadow.wait_for(1, Duration::from_secs(5)).unwrap()[0];
    let copy_body = copy.body_text();
    for secret in ["hunter2", "4111 1111 1111 1111", "u-42"] {
        assert!(!copy_body.contains(secret), "{secret} in the copy: {copy_body}");
    }
    assert!(copy_body.contains("****1111") && copy_body.contains("A-1"), "sanitized, not dropped: {copy_body}");
    no_filter_failed(&d);
}

/// The deployment with a probe after the four filters that traps on `x-trap`.
fn with_trapping_probe(policy: &str) -> (Deployment, Backend, Backend) {
    let (primary, shadow) = (backend("stable", false), backend("shadow", false));
    let probe = serde_json::json!({ "onRequestHeaders": [{ "trapIfHeader": { "name": "x-trap" } }] });
    let filter = WasmFilter::new(wasm_module("probe_fixture").unwrap(), "probe", &probe).failure_policy(policy).reload_backoff_ms(100);
    let d = deploy(primary.addr(), shadow.addr(), &Options { extra_filter: Some(filter), ..Options::default() });
    (d, primary, shadow)
}

#[test]
fn a_trap_under_fail_reload_fails_its_request_and_the_next_ones_are_served() {
    let (d, primary, _shadow) = with_trapping_probe("FAIL_RELOAD");
    let memories = memory::sample(d.envoy.pid(), Duration::ZERO).wasm_memories;
    for round in 0..20 {
        let trapped = send(&d, &Request::get("/catalog/items/1").header("x-trap", "1")).unwrap();
        assert!(trapped.status >= 500, "round {round}: the trapping request fails: {}", trapped.status);
        thread::sleep(Duration::from_millis(150)); // past the reload backoff
        for _ in 0..5 {
            let ok = send(&d, &Request::get("/catalog/items/2")).unwrap();
            assert_eq!(ok.status, 200, "round {round}: served after the reload: {}", ok.body_text());
        }
    }
    let after = memory::sample(d.envoy.pid(), Duration::ZERO).wasm_memories;
    println!("20 traps under FAIL_RELOAD: Wasm memories {memories} -> {after}; the primary served {} requests", primary.attempt_count());
    assert_eq!(primary.attempt_count(), 100, "every request after a trap reached the backend");
    assert!(after <= memories + 2, "reloaded VMs replace the failed ones: {memories} -> {after}");
    // The four filters never trapped; their counters go on.
    assert_eq!(metric(&d, "principal_authz.allowed"), 120);
    for f in ["principal_authz", "header_router", "retry_hints", "mirror_sanitizer"] {
        assert_eq!(metric(&d, &format!("{f}.errors")), 0, "{f} counted errors");
    }
}

#[test]
fn a_trap_under_fail_closed_fails_only_that_workers_plugin() {
    let (d, _primary, _shadow) = with_trapping_probe("FAIL_CLOSED");
    let trapped = send(&d, &Request::get("/catalog/items/1").header("x-trap", "1")).unwrap();
    assert!(trapped.status >= 500, "the trapping request fails: {}", trapped.status);
    // Envoy: "all plugins associated with the VM will return an HTTP 503".
    // Each worker has its own VM; new connections land on either worker.
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..40 {
        *statuses.entry(send(&d, &Request::get("/catalog/items/2")).unwrap().status).or_default() += 1;
    }
    println!("after one trap under FAIL_CLOSED, 40 new connections: {statuses:?}");
    assert_eq!(statuses.keys().copied().collect::<Vec<_>>(), vec![200, 503], "503 on the failed worker, 200 on the other, nothing else");
    assert!(d.envoy.admin_json("/server_info").is_ok(), "Envoy itself is up");
}
