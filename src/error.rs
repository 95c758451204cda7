//! The Kombu exception family as one Rust enum.
//!
//! Every fallible operation of the core returns [`Error`]. Each variant maps to the exception
//! Python Kombu raises in the same situation; [`Error::name`] returns that name, which the
//! JavaScript facade uses as the `name` of the thrown `Error` subclass.

use std::fmt;

/// The result type of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// AMQP reply codes that the brokers (memory, RabbitMQ, and the gateway) use for channel and
/// connection exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplyCode {
    /// 311 content-too-large
    ContentTooLarge,
    /// 312 no-route
    NoRoute,
    /// 313 no-consumers
    NoConsumers,
    /// 320 connection-forced
    ConnectionForced,
    /// 402 invalid-path
    InvalidPath,
    /// 403 access-refused
    AccessRefused,
    /// 404 not-found
    NotFound,
    /// 405 resource-locked
    ResourceLocked,
    /// 406 precondition-failed
    PreconditionFailed,
    /// 501 frame-error
    FrameError,
    /// 502 syntax-error
    SyntaxError,
    /// 503 command-invalid
    CommandInvalid,
    /// 504 channel-error
    ChannelError,
    /// 505 unexpected-frame
    UnexpectedFrame,
    /// 506 resource-error
    ResourceError,
    /// 530 not-allowed
    NotAllowed,
    /// 540 not-implemented
    NotImplemented,
    /// 541 internal-error
    InternalError,
    /// Any other code.
    Other(u16),
}

impl ReplyCode {
    /// The numeric AMQP reply code.
    pub fn code(self) -> u16 {
        match self {
            Self::ContentTooLarge => 311,
            Self::NoRoute => 312,
            Self::NoConsumers => 313,
            Self::ConnectionForced => 320,
            Self::InvalidPath => 402,
            Self::AccessRefused => 403,
            Self::NotFound => 404,
            Self::ResourceLocked => 405,
            Self::PreconditionFailed => 406,
            Self::FrameError => 501,
            Self::SyntaxError => 502,
            Self::CommandInvalid => 503,
            Self::ChannelError => 504,
            Self::UnexpectedFrame => 505,
            Self::ResourceError => 506,
            Self::NotAllowed => 530,
            Self::NotImplemented => 540,
            Self::InternalError => 541,
            Self::Other(c) => c,
        }
    }

    /// The reply code for a numeric value.
    pub fn from_code(code: u16) -> Self {
        match code {
            311 => Self::ContentTooLarge,
            312 => Self::NoRoute,
            313 => Self::NoConsumers,
            320 => Self::ConnectionForced,
            402 => Self::InvalidPath,
            403 => Self::AccessRefused,
            404 => Self::NotFound,
            405 => Self::ResourceLocked,
            406 => Self::PreconditionFailed,
            501 => Self::FrameError,
            502 => Self::SyntaxError,
            503 => Self::CommandInvalid,
            504 => Self::ChannelError,
            505 => Self::UnexpectedFrame,
            506 => Self::ResourceError,
            530 => Self::NotAllowed,
            540 => Self::NotImplemented,
            541 => Self::InternalError,
            c => Self::Other(c),
        }
    }

    /// The exception name py-amqp uses for this code (`NotFound`, `PreconditionFailed`, ...).
    pub fn exception_name(self) -> &'static str {
        match self {
            Self::ContentTooLarge => "ContentTooLarge",
            Self::NoRoute => "NoRoute",
            Self::NoConsumers => "NoConsumers",
            Self::ConnectionForced => "ConnectionForced",
            Self::InvalidPath => "InvalidPath",
            Self::AccessRefused => "AccessRefused",
            Self::NotFound => "NotFound",
            Self::ResourceLocked => "ResourceLocked",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::FrameError => "FrameError",
            Self::SyntaxError => "FrameSyntaxError",
            Self::CommandInvalid => "CommandInvalid",
            Self::ChannelError => "ChannelNotOpen",
            Self::UnexpectedFrame => "UnexpectedFrame",
            Self::ResourceError => "ResourceError",
            Self::NotAllowed => "NotAllowed",
            Self::NotImplemented => "AMQPNotImplementedError",
            Self::InternalError => "InternalError",
            Self::Other(_) => "AMQPError",
        }
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// Every error of the core, one variant per member of Kombu's exception family.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `NotBoundError`: a channel-dependent method was called on an unbound entity.
    #[error("Can't call {operation} on {entity} not bound to a channel")]
    NotBound {
        /// The method that was called (`declare`, `delete`, ...).
        operation: &'static str,
        /// The entity, as Kombu prints it (`Exchange 'tasks'(direct)`).
        entity: String,
    },

    /// `MessageStateError`: the message was already settled (acked, rejected or requeued).
    #[error("Message already acknowledged with state: {state}")]
    MessageState {
        /// The state the message is in (`ACK`, `REJECTED`, `REQUEUED`).
        state: String,
    },

    /// `TimeoutError` (Python's `socket.timeout`): a wait ran out of time.
    #[error("timed out{}", .0.as_deref().map(|s| format!(": {s}")).unwrap_or_default())]
    Timeout(Option<String>),

    /// `Empty`: `SimpleQueue.get` found no message.
    #[error("queue is empty{}", .0.as_deref().map(|s| format!(": {s}")).unwrap_or_default())]
    Empty(Option<String>),

    /// `LimitExceeded`: a resource limit was reached.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),

    /// `ConnectionLimitExceeded`: a pool has no connection left.
    #[error("maximum number of simultaneous connections exceeded ({limit})")]
    ConnectionLimitExceeded {
        /// The pool limit.
        limit: usize,
    },

    /// `ChannelLimitExceeded`: a pool has no channel left.
    #[error("maximum number of simultaneous channels exceeded ({limit})")]
    ChannelLimitExceeded {
        /// The pool limit.
        limit: usize,
    },

    /// `ContentDisallowed`: the consumer's accept list refuses this content type.
    #[error("Refusing to deserialize disallowed content of type {content_type} (accepted: {accepted})")]
    ContentDisallowed {
        /// The refused content type.
        content_type: String,
        /// The accepted content types, comma separated.
        accepted: String,
    },

    /// `SerializerNotInstalled`: no serializer of that name or content type is registered.
    #[error("No encoder/decoder installed for {name} (known: {known})")]
    SerializerNotInstalled {
        /// The requested name or content type.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },

    /// Compression method unknown (Python raises `KeyError`/`SerializerNotInstalled`-like
    /// errors; Kombu 4 reports it as a decode/encode error on use).
    #[error("Compression method {name:?} is not installed (known: {known})")]
    CompressionNotInstalled {
        /// The requested alias or content type.
        name: String,
        /// The registered aliases, comma separated.
        known: String,
    },

    /// `EncodeError`: serialization or compression of an outgoing body failed.
    #[error("EncodeError: {0}")]
    Encode(String),

    /// `DecodeError`: deserialization or decompression of a received body failed.
    #[error("DecodeError: {0}")]
    Decode(String),

    /// `OperationalError`: a recoverable operation failed after the retry policy gave up, or
    /// the connection failed in a way the caller may retry.
    #[error("OperationalError: {0}")]
    Operational(String),

    /// `RecoverableConnectionError`: the connection is gone; it must be re-established first.
    #[error("RecoverableConnectionError: {0}")]
    RecoverableConnection(String),

    /// A connection-level exception from the broker (AMQP `connection.close` with a code).
    /// The connection is closed.
    #[error("{} ({}): {text}", .code.exception_name(), .code.code())]
    Connection {
        /// The AMQP reply code.
        code: ReplyCode,
        /// The broker's reply text.
        text: String,
    },

    /// A channel-level exception from the broker (AMQP `channel.close` with a code: `NotFound`,
    /// `PreconditionFailed`, `AccessRefused`, `ResourceLocked`, ...). The channel is closed.
    #[error("{} ({}): {text}", .code.exception_name(), .code.code())]
    Channel {
        /// The AMQP reply code.
        code: ReplyCode,
        /// The broker's reply text.
        text: String,
    },

    /// `InconsistencyError`: the broker's data is not what Kombu expects (Redis binding
    /// table missing, ...).
    #[error("InconsistencyError: {0}")]
    Inconsistency(String),

    /// `MessageNacked`: the broker refused a published message in confirm mode.
    #[error("MessageNacked: {0}")]
    MessageNacked(String),

    /// `MatcherNotInstalled`: no matcher of that name is registered.
    #[error("No matcher installed for {name} (known: {known})")]
    MatcherNotInstalled {
        /// The requested matcher.
        name: String,
        /// The registered matchers, comma separated.
        known: String,
    },

    /// The URL could not be parsed; names the part that is wrong.
    #[error("invalid broker URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, with its password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No transport of that name exists (Kombu raises `KeyError` with suggestions).
    #[error("No such transport: {name:?} (known: {known})")]
    UnknownTransport {
        /// The requested transport.
        name: String,
        /// The available transports, comma separated.
        known: String,
    },

    /// `ValueError`: an option has a value the operation cannot use (`delivery_mode`,
    /// `expiration`, `failover_strategy`, ...). Change the value; retrying does not help.
    #[error("ValueError: {option} must be {expected}, not {value}")]
    InvalidOption {
        /// The option, as Kombu names it.
        option: &'static str,
        /// The value given, as written (strings quoted).
        value: String,
        /// What it must be.
        expected: &'static str,
    },

    /// `ValueError`: an operation was called without something it needs (a `SimpleQueue`
    /// without a name, `send_reply` for a request without `reply_to`, ...). Supply it.
    #[error("ValueError: {what} needs {needs}")]
    MissingArgument {
        /// The operation or object (`a SimpleQueue`, `send_reply`, ...).
        what: &'static str,
        /// What it needs.
        needs: &'static str,
    },

    /// `ValueError`: a matcher pattern does not compile. Fix the pattern.
    #[error("ValueError: invalid {matcher} pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The matcher (`glob`, `pcre`).
        matcher: &'static str,
        /// The pattern.
        pattern: String,
        /// Why it does not compile.
        reason: String,
    },

    /// `ValueError`: a value is longer than the protocol can carry (an AMQP short string —
    /// a queue, exchange or routing key name, a header key — over 255 bytes). Shorten it.
    #[error("ValueError: {what} longer than {max} bytes: {}...", .value.chars().take(40).collect::<String>())]
    TooLong {
        /// What the value is (`AMQP short string`).
        what: &'static str,
        /// The largest length in bytes.
        max: usize,
        /// The value (its first 40 characters are shown).
        value: String,
    },

    /// `ValueError`: a pool limit cannot go below `floor` — what the pool has in use, or, for
    /// the global pools, their current limit — unless forced. Pass `force`, or release
    /// resources first.
    #[error("ValueError: cannot shrink the pool limit to {limit}: {floor} {why} (pass force to do it anyway)")]
    PoolShrink {
        /// The limit asked for.
        limit: usize,
        /// The lowest limit allowed without `force`.
        floor: usize,
        /// What `floor` is (`resources are in use`, ...).
        why: &'static str,
    },

    /// `ValueError`: `acquire` on a pool after `force_close_all`. Make a new pool.
    #[error("ValueError: acquire on a closed pool")]
    PoolClosed,

    /// An argument had a wrong value (Python's `ValueError`/`TypeError`): the JavaScript
    /// facade's argument checks, and a `ValueError` received from the gateway.
    #[error("ValueError: {0}")]
    Value(String),

    /// A transport option (from `transport_options` or the URL's query) has a value the
    /// transport cannot use (Python kombu raises `ValueError`).
    #[error("transport option {option:?}: {reason}")]
    InvalidTransportOption {
        /// The option's name.
        option: String,
        /// What is wrong with the value, and what is expected.
        reason: String,
    },

    /// The transport does not implement this operation (Python's `NotImplementedError`).
    #[error("NotImplementedError: {0}")]
    NotImplemented(String),
}

impl Error {
    /// The Python Kombu exception name of this error (`NotBoundError`, `ContentDisallowed`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::NotBound { .. } => "NotBoundError",
            Self::MessageState { .. } => "MessageStateError",
            Self::Timeout(_) => "TimeoutError",
            Self::Empty(_) => "Empty",
            Self::LimitExceeded(_) => "LimitExceeded",
            Self::ConnectionLimitExceeded { .. } => "ConnectionLimitExceeded",
            Self::ChannelLimitExceeded { .. } => "ChannelLimitExceeded",
            Self::ContentDisallowed { .. } => "ContentDisallowed",
            Self::SerializerNotInstalled { .. } => "SerializerNotInstalled",
            Self::CompressionNotInstalled { .. } => "CompressionNotInstalled",
            Self::Encode(_) => "EncodeError",
            Self::Decode(_) => "DecodeError",
            Self::Operational(_) => "OperationalError",
            Self::RecoverableConnection(_) => "RecoverableConnectionError",
            Self::Connection { code, .. } | Self::Channel { code, .. } => code.exception_name(),
            Self::Inconsistency(_) => "InconsistencyError",
            Self::MessageNacked(_) => "MessageNacked",
            Self::MatcherNotInstalled { .. } => "MatcherNotInstalled",
            Self::InvalidUrl { .. } => "InvalidURL",
            Self::UnknownTransport { .. } => "UnknownTransport",
            Self::Value(_)
            | Self::InvalidOption { .. }
            | Self::InvalidTransportOption { .. }
            | Self::MissingArgument { .. }
            | Self::InvalidPattern { .. }
            | Self::TooLong { .. }
            | Self::PoolShrink { .. }
            | Self::PoolClosed => "ValueError",
            Self::NotImplemented(_) => "NotImplementedError",
        }
    }

    /// A channel exception with `code`.
    pub fn channel(code: ReplyCode, text: impl Into<String>) -> Self {
        Self::Channel { code, text: text.into() }
    }

    /// A connection exception with `code`.
    pub fn connection(code: ReplyCode, text: impl Into<String>) -> Self {
        Self::Connection { code, text: text.into() }
    }

    /// True for errors after which the connection must be re-established before retrying
    /// (Kombu's `recoverable_connection_errors`).
    pub fn is_recoverable_connection_error(&self) -> bool {
        matches!(self, Self::RecoverableConnection(_) | Self::Operational(_))
            || matches!(self, Self::Connection { code, .. } if *code == ReplyCode::ConnectionForced)
    }

    /// True for errors that can be retried on a new channel without reconnecting
    /// (Kombu's `recoverable_channel_errors`).
    pub fn is_recoverable_channel_error(&self) -> bool {
        matches!(self, Self::Channel { code: ReplyCode::ResourceLocked | ReplyCode::ChannelError, .. })
    }

    /// True for errors of the connection (Kombu's `connection_errors`).
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Self::RecoverableConnection(_) | Self::Connection { .. } | Self::Operational(_)
        )
    }

    /// True for the errors Kombu raises as `ValueError`: the call itself is wrong (a bad
    /// argument or option), so retrying it as it is cannot succeed.
    pub fn is_value_error(&self) -> bool {
        self.name() == "ValueError"
    }

    /// True for channel exceptions (Kombu's `channel_errors`).
    pub fn is_channel_error(&self) -> bool {
        matches!(self, Self::Channel { .. })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn names_follow_kombu() {
        let e = Error::NotBound { operation: "delete", entity: "Exchange 'tasks'(direct)".into() };
        assert_eq!(e.name(), "NotBoundError");
        assert_eq!(
            e.to_string(),
            "Can't call delete on Exchange 'tasks'(direct) not bound to a channel"
        );
        let e = Error::channel(ReplyCode::NotFound, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert_eq!(e.name(), "NotFound");
        assert!(e.is_channel_error());
        assert_eq!(e.to_string(), "NotFound (404): NOT_FOUND - no queue 'q' in vhost '/'");
    }

    #[test]
    fn value_errors_name_what_was_wrong() {
        let e = Error::InvalidOption { option: "delivery_mode", value: "7".into(), expected: "1 (transient) or 2 (persistent)" };
        assert_eq!(e.name(), "ValueError");
        assert!(e.is_value_error());
        assert_eq!(e.to_string(), "ValueError: delivery_mode must be 1 (transient) or 2 (persistent), not 7");
        let e = Error::TooLong { what: "AMQP short string", max: 255, value: "x".repeat(300) };
        assert_eq!(e.to_string(), format!("ValueError: AMQP short string longer than 255 bytes: {}...", "x".repeat(40)));
        assert!(!Error::Timeout(None).is_value_error());
    }

    #[test]
    fn reply_codes_round_trip() {
        for c in [311, 312, 313, 320, 402, 403, 404, 405, 406, 501, 502, 503, 504, 505, 506, 530, 540, 541, 999] {
            assert_eq!(ReplyCode::from_code(c).code(), c);
        }
    }
}
