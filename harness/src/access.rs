//! Which of a stream's maps the running callback may touch: Envoy lets a
//! callback reach a header map only in the phase that owns it.

/// Which maps the running callback may touch (set by the stream driver).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    pub request_headers: bool,
    pub request_trailers: bool,
    pub response_headers: bool,
    pub response_trailers: bool,
}

impl Access {
    pub fn all() -> Self {
        Self { request_headers: true, request_trailers: true, response_headers: true, response_trailers: true }
    }
}
