//! Checks an outcome against a scenario step's expectations; each failed
//! expectation is one line saying what was expected and what happened.

use crate::scenario::{Expect, HeaderWant, MessageExpect};
use crate::state::SharedState;
use crate::stream::Outcome;

fn check_message(side: &str, expect: &MessageExpect, path: Option<&str>, headers: &[(String, String)], body: &[u8], out: &mut Vec<String>) {
    if let (Some(want), Some(got)) = (&expect.path, path) {
        if want != got {
            out.push(format!("{side} path: expected {want:?}, got {got:?}"));
        }
    }
    for (name, want) in &expect.headers.0 {
        let name = name.to_ascii_lowercase();
        let got: Vec<&str> = headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect();
        match (want, got.first()) {
            (HeaderWant::First(want), Some(first)) if want == first => {}
            (HeaderWant::First(want), Some(first)) => out.push(format!("{side} header {name}: expected {want:?}, got {first:?}")),
            (HeaderWant::First(want), None) => out.push(format!("{side} header {name}: expected {want:?}, but it is absent")),
            (HeaderWant::All(want), _) if *want == got => {}
            (HeaderWant::All(want), _) => out.push(format!("{side} header {name}: expected the values {want:?} in order, got {got:?}")),
            (HeaderWant::Absent, None) => {}
            (HeaderWant::Absent, Some(_)) => out.push(format!("{side} header {name}: expected absent, got {got:?}")),
        }
    }
    for name in &expect.absent_headers {
        let name = name.to_ascii_lowercase();
        if let Some((_, got)) = headers.iter().find(|(k, _)| *k == name) {
            out.push(format!("{side} header {name}: expected absent, got {got:?}"));
        }
    }
    if let Some(want) = &expect.body {
        let want = want.bytes();
        if want != body {
            let (want, got) = (String::from_utf8_lossy(&want), String::from_utf8_lossy(body));
            out.push(format!("{side} body: expected {want:?}, got {got:?}"));
        }
    }
}

fn flag(name: &str, want: Option<bool>, got: bool, out: &mut Vec<String>) {
    if let Some(want) = want {
        if want != got {
            out.push(format!("{name}: expected {want}, got {got}"));
        }
    }
}

/// Every expectation `expect` has that `outcome` does not meet.
pub fn check(expect: &Expect, outcome: &Outcome, shared: &SharedState) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(want) = expect.status {
        if outcome.status() != want {
            out.push(format!("status: expected {want}, got {}", outcome.status()));
        }
    }
    flag("upstream called", expect.upstream_called, outcome.upstream.is_some(), &mut out);
    flag("local response", expect.local_response, outcome.local_response.is_some(), &mut out);
    flag("route cache cleared", expect.route_cache_cleared, outcome.route_cache_cleared, &mut out);
    flag("trap", expect.trap, outcome.trap.is_some(), &mut out);
    flag("stalled", expect.stalled, outcome.stalled.is_some(), &mut out);
    if let Some(want) = &expect.upstream {
        match &outcome.upstream {
            Some(up) => check_message("upstream", want, Some(&up.path), &up.headers, &up.body, &mut out),
            None => out.push("upstream: expected a request, but the upstream was not contacted".into()),
        }
    }
    if let Some(want) = &expect.response {
        match &outcome.response {
            Some(r) => check_message("response", want, None, &r.headers, &r.body, &mut out),
            None => out.push("response: expected one, but the stream stalled".into()),
        }
    }
    let metrics = shared.metrics();
    for (name, want) in &expect.metrics {
        match metrics.get(name) {
            Some(got) if got == want => {}
            Some(got) => out.push(format!("metric {name}: expected {want}, got {got}")),
            None => out.push(format!("metric {name}: expected {want}, but it is not defined")),
        }
    }
    for needle in &expect.logs {
        if !outcome.logged(needle) {
            out.push(format!("logs: no line contains {needle:?}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::HeaderExpect;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn all_values_in_order_and_absence_are_checked() {
        let headers = pairs(&[("x-a", "1"), ("x-b", "gone?"), ("x-a", "2")]);
        let expect = MessageExpect {
            headers: HeaderExpect(vec![
                ("x-a".into(), HeaderWant::All(vec!["1".into(), "2".into()])),
                ("x-a".into(), HeaderWant::First("1".into())),
                ("x-c".into(), HeaderWant::Absent),
            ]),
            ..MessageExpect::default()
        };
        let mut out = Vec::new();
        check_message("upstream", &expect, None, &headers, b"", &mut out);
        assert!(out.is_empty(), "{out:?}");
        let expect = MessageExpect {
            headers: HeaderExpect(vec![
                ("x-a".into(), HeaderWant::All(vec!["2".into(), "1".into()])),
                ("x-b".into(), HeaderWant::Absent),
            ]),
            ..MessageExpect::default()
        };
        check_message("upstream", &expect, None, &headers, b"", &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].contains("in order"), "{out:?}");
        assert!(out[1].contains("expected absent"), "{out:?}");
    }
}
