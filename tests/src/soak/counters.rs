//! Each filter's counters against the requests sent: what the mix says each
//! filter must have seen and decided, and what the backends received.

use crate::soak::checks::Report;
use crate::soak::evidence::Evidence;
use crate::soak::statuses::Class;
use std::collections::{BTreeMap, HashMap};

pub fn judge(ev: &Evidence, r: &mut Report, classes: &BTreeMap<Class, u64>) {
    let answered = |o: &crate::soak::load::Outcome| o.status.is_some();
    // Requests that reached Envoy's filters: every answered one (no request
    // is refused before the filters in this mix).
    let reached = ev.count(|_, o| answered(o));
    let allowed = ev.count(|k, o| answered(o) && ev.allowed(k));
    let denied = reached - allowed;

    r.section("principal-authz");
    r.equal("allowed + denied = requests", ev.metric("principal_authz.allowed") + ev.metric("principal_authz.denied"), reached, "every request decided");
    r.equal("allowed", ev.metric("principal_authz.allowed"), allowed, "web and billing, paths outside /admin");
    r.equal("denied", ev.metric("principal_authz.denied"), denied, "guest, and /admin for everyone");
    r.equal("policy no-admin denied", ev.metric("principal_authz.policy.no-admin.denied"), ev.count(|k, o| answered(o) && k.admin), "DENY policy on /admin/*");
    r.equal("errors", ev.metric("principal_authz.errors"), 0, "nothing unreadable in this mix");

    r.section("header-router");
    let mobile = ev.count(|k, o| answered(o) && ev.allowed(k) && k.mobile);
    let canary_matched = ev.metric("header_router.route.canary.matched");
    r.equal("route mobile matched", ev.metric("header_router.route.mobile.matched"), mobile, "allowed requests from a Mobile user agent");
    r.equal("route canary matched", canary_matched, allowed - mobile, "every other allowed request");
    let (stable, canary) = (ev.metric("header_router.route.canary.value.stable"), ev.metric("header_router.route.canary.value.canary"));
    r.equal("split sides add up", stable + canary, canary_matched, "value.stable + value.canary");
    r.line(format!("canary share: {canary} of {canary_matched} ({:.1}%; 10% by weight, sticky per user)", 100.0 * canary as f64 / canary_matched.max(1) as f64));
    r.equal(
        "client routing headers dropped",
        ev.metric("header_router.client_header_removed"),
        ev.count(|k, o| answered(o) && ev.allowed(k) && k.route_header),
        "allowed requests that sent their own x-route-destination",
    );
    r.equal("errors", ev.metric("header_router.errors"), 0, "every request routed");
    // Stickiness: one side per user, and the side chosen is the backend that answered.
    let mut sides: HashMap<u32, std::collections::BTreeSet<String>> = HashMap::new();
    let mut mismatched = 0;
    for (k, o) in &ev.requests {
        if !(answered(o) && ev.allowed(k)) {
            continue;
        }
        let backend = ev.primary.get(&o.n).map(|(b, _)| b.as_str());
        if o.chosen.as_deref() != backend {
            mismatched += 1;
        }
        if let (Some(user), false, Some(side)) = (k.session, k.mobile, o.chosen.clone()) {
            sides.entry(user).or_default().insert(side);
        }
    }
    let split_users = sides.values().filter(|s| s.len() > 1).count() as u64;
    r.equal("users on two sides", split_users, 0, &format!("{} users with a session cookie; each stays on one side", sides.len()));
    r.equal("requests sent elsewhere than chosen", mismatched, 0, "the backend that saw each request is the side header-router named");

    r.section("retry-hints");
    let safe = ev.count(|k, o| answered(o) && ev.allowed(k) && k.safe());
    let (hinted, unsafe_, exhausted) =
        (ev.metric("retry_hints.hinted"), ev.metric("retry_hints.skipped_unsafe"), ev.metric("retry_hints.budget_exhausted"));
    r.equal("hinted + skipped_unsafe + budget_exhausted = requests", hinted + unsafe_ + exhausted, allowed, "each allowed request decided once");
    r.equal("skipped_unsafe", unsafe_, allowed - safe, "POSTs without idempotency key");
    r.equal("hinted + budget_exhausted", hinted + exhausted, safe, "GETs and keyed POSTs");
    let withheld = classes.get(&Class::WithheldUnsafe).copied().unwrap_or(0) + classes.get(&Class::WithheldBudget).copied().unwrap_or(0);
    r.equal("retry-after added", ev.metric("retry_hints.retry_after_added"), withheld, "every 503 whose retries were withheld");
    r.equal(
        "client router orders removed",
        ev.metric("retry_hints.client_headers_removed"),
        ev.count(|k, o| answered(o) && ev.allowed(k) && k.router_orders),
        "allowed requests that sent x-envoy-max-retries",
    );
    r.equal("errors", ev.metric("retry_hints.errors"), 0, "no host call failed");

    r.section("mirror-sanitizer (upstream filter, shadow copies)");
    let mirrored = ev.count(|k, o| answered(o) && ev.allowed(k) && k.mirrored);
    let copies = ev.shadow.len() as u64;
    let copy_attempts: u64 = ev.shadow.values().map(|a| a.statuses.len() as u64).sum();
    r.equal("copies received by the shadow", copies, mirrored, "one per allowed request to /orders, whatever its retries");
    r.equal("copies per request", copy_attempts, copies, "no copy sent twice");
    let outcomes = ["sanitized", "dropped_oversize", "dropped_unreadable", "rejected"]
        .map(|o| ev.metric(&format!("mirror_sanitizer.shadow.{o}")));
    r.equal("sanitized + dropped = copies", outcomes.iter().take(3).sum(), copies, "each copy counts one outcome");
    r.equal("sanitized", outcomes[0], copies, "every copy is JSON or bodiless and under 64 KiB");
    r.equal(
        "card numbers masked",
        ev.metric("mirror_sanitizer.rule.cards.redactions"),
        ev.count(|k, o| answered(o) && ev.allowed(k) && k.mirrored && k.post),
        "one per mirrored POST body",
    );
    r.equal("secrets that reached the shadow", ev.leaks.len() as u64, 0, &format!("{:?}", ev.leaks.iter().take(3).collect::<Vec<_>>()));
    r.equal("errors", ev.metric("mirror_sanitizer.errors"), 0, "no host call failed");
    r.equal("attempts without a request number", ev.anonymous.0 + ev.anonymous.1, 0, "every attempt belongs to a request sent");
}
