//! Readable printing for the demo: a request in, what the upstream saw, what
//! the client got.

use crate::client::{Request, Response};
use crate::upstream::Received;

/// Headers Envoy adds to every request or response; the tour hides them so
/// what the filters did stands out.
const ENVOY_NOISE: [&str; 6] = [
    "x-request-id",
    "x-forwarded-proto",
    "x-envoy-expected-rq-timeout-ms",
    "date",
    "server",
    "x-envoy-upstream-service-time",
];

fn shown(name: &str) -> bool {
    !ENVOY_NOISE.contains(&name.to_ascii_lowercase().as_str())
}

pub fn section(title: &str, what: &str) {
    println!("\n== {title}\n   {what}");
}

pub fn request(label: &str, request: &Request) {
    println!("\n-> {label}\n   client sent: {} {}", request.method, request.path);
    for (k, v) in &request.headers {
        println!("     {k}: {v}");
    }
    if !request.body.is_empty() {
        println!("     body: {:?}", String::from_utf8_lossy(&request.body));
    }
}

pub fn upstream(name: &str, seen: Option<&Received>) {
    let Some(seen) = seen else {
        println!("   {name} saw: nothing");
        return;
    };
    println!("   {name} saw: {} {}", seen.method, seen.path);
    for (k, v) in seen.headers.iter().filter(|(k, _)| shown(k)) {
        println!("     {k}: {v}");
    }
    if !seen.body.is_empty() {
        println!("     body: {:?}", seen.body_text());
    }
}

pub fn response(response: &Response) {
    println!("<- client got: {}", response.status);
    for (k, v) in response.message.headers.iter().filter(|(k, _)| shown(k)) {
        println!("     {k}: {v}");
    }
    if !response.message.body.is_empty() {
        println!("     body: {:?}", response.body_text());
    }
}

pub fn note(text: &str) {
    println!("   {text}");
}
