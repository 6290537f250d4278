//! How a cluster the module calls answers: the scripted reply to a
//! `proxy_http_call` or gRPC call.

/// How a cluster the module calls answers (`proxy_http_call` / gRPC).
#[derive(Debug, Clone, Default)]
pub struct CallReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// gRPC status code for gRPC calls (0 = OK).
    pub grpc_status: u32,
    pub grpc_message: String,
    /// The call fails (reset or timeout): no response reaches the module.
    pub fail: bool,
    /// How long after the call the answer comes, in virtual time. A delay at
    /// or past the call's timeout makes it time out, as Envoy's async client
    /// does: the module gets the failure when the timeout expires.
    pub delay: std::time::Duration,
}

impl CallReply {
    pub fn http(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self { status, body: body.into(), ..Self::default() }
    }

    pub fn grpc(message: impl Into<Vec<u8>>) -> Self {
        Self { status: 200, body: message.into(), ..Self::default() }
    }

    pub fn grpc_error(code: u32, message: &str) -> Self {
        Self { status: 200, grpc_status: code, grpc_message: message.to_string(), ..Self::default() }
    }

    pub fn failure() -> Self {
        Self { fail: true, ..Self::default() }
    }

    /// The gRPC status the call closes with.
    pub fn grpc_status(mut self, code: u32, message: &str) -> Self {
        self.grpc_status = code;
        self.grpc_message = message.to_string();
        self
    }

    /// The answer comes `delay` after the call (virtual time).
    pub fn after(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}
