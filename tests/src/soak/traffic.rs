//! The soak's request mix, a pure function of a seed and the request's
//! number, so any worker can build any request and the report can tell
//! what each one was: allowed and denied callers, GETs and JSON POSTs (half
//! with an idempotency key), mirrored and plain routes, sticky sessions,
//! mobile clients, and clients that try to give router orders. Each POST
//! carries secrets the shadow copy must not see.

use crate::client::Request;
use crate::soak::backend::SOAK_ID;
use crate::soak::deployment::ROUTE_HEADER;

/// Texts planted in requests that must never reach the shadow upstream.
pub const SECRETS: [&str; 5] = ["pw-secret-", "4111 1111 1111 1111", "\"user_id\":\"u-", "tok-secret-", "session=user-"];

/// What one request is, as far as the report cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Index into the deployment's callers.
    pub caller: usize,
    pub post: bool,
    /// A POST with an `idempotency-key` (retriable).
    pub keyed: bool,
    /// To `/orders`, the mirrored route.
    pub mirrored: bool,
    /// To `/admin/…`, which a DENY policy refuses to everyone.
    pub admin: bool,
    /// The sticky session's user, if the request has a session cookie.
    pub session: Option<u32>,
    pub mobile: bool,
    /// The client sends its own `x-envoy-max-retries` (must be removed).
    pub router_orders: bool,
    /// The client sends its own routing header (must be dropped).
    pub route_header: bool,
}

impl Kind {
    /// Whether the policy lets this request in, given which callers may call.
    pub fn allowed(&self, caller_allowed: &[bool]) -> bool {
        caller_allowed.get(self.caller).copied().unwrap_or(false) && !self.admin
    }

    /// Whether retry-hints may retry it.
    pub fn safe(&self) -> bool {
        !self.post || self.keyed
    }
}

/// The mix: which request number `n` is.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub seed: u64,
}

/// splitmix64: a well-mixed 64-bit value from any input.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Mix {
    pub fn kind(&self, n: u64) -> Kind {
        let h = mix64(self.seed ^ mix64(n));
        // Independent percent rolls from different bits of one hash.
        let roll = |shift: u32| (h >> shift) % 100;
        let caller = match roll(0) {
            0..=44 => 0,
            45..=84 => 1,
            _ => 2,
        };
        let post = roll(7) < 45;
        Kind {
            caller,
            post,
            keyed: post && roll(14) < 50,
            mirrored: roll(21) < 50,
            admin: roll(28) < 3,
            session: (roll(35) < 90).then_some(((h >> 42) % 300) as u32),
            mobile: roll(49) < 10,
            router_orders: roll(56) < 5,
            route_header: (h >> 60) == 0, // 1 in 16
        }
    }

    /// Request number `n`.
    pub fn request(&self, n: u64) -> (Kind, Request) {
        let kind = self.kind(n);
        let path = match (kind.admin, kind.mirrored, kind.post) {
            (true, _, _) => format!("/admin/users/{}", n % 97),
            (false, true, false) => format!("/orders/{}", n % 1000),
            (false, true, true) => "/orders".to_string(),
            (false, false, false) => format!("/catalog/items/{}", n % 1000),
            (false, false, true) => "/catalog/reviews".to_string(),
        };
        let mut request = if kind.post {
            let user = kind.session.unwrap_or(0);
            let body = format!(
                r#"{{"user_id":"u-{user}","password":"pw-secret-{n}","card":"4111 1111 1111 1111","note":"order {n}","items":[{{"sku":"A-{}","qty":{}}},{{"sku":"B-7","qty":1}}]}}"#,
                n % 50,
                n % 5 + 1,
            );
            Request::post(&path, body).header("content-type", "application/json")
        } else {
            Request::get(&path)
        };
        request = request.header(SOAK_ID, &n.to_string()).header("authorization", &format!("Bearer tok-secret-{n}"));
        if kind.keyed {
            request = request.header("idempotency-key", &format!("order-{n}"));
        }
        if let Some(user) = kind.session {
            request = request.header("cookie", &format!("session=user-{user}; theme=dark"));
        }
        let agent = if kind.mobile { "Mozilla/5.0 (iPhone) Mobile/15E148" } else { "shop-client/1.0" };
        request = request.header("user-agent", agent);
        if kind.router_orders {
            request = request.header("x-envoy-max-retries", "10").header("x-envoy-retry-on", "5xx");
        }
        if kind.route_header {
            request = request.header(ROUTE_HEADER, "canary");
        }
        (kind, request)
    }
}
