//! What every client does with librdkafka's errors and log lines: one line per kind per
//! interval, so a cluster that stays unreachable (or refuses a certificate, or a password) is
//! reported plainly without flooding the log twice a second.

use std::time::Instant;

use parking_lot::Mutex;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use weir_core::Throttle;

/// A client's error and log lines, throttled.
#[derive(Debug, Default)]
pub(crate) struct ClientLog(Mutex<Throttle>);

impl ClientLog {
    /// A client error (a broker down, a failed handshake, a refused authentication).
    pub fn error(&self, error: &RdError, reason: &str) {
        let kind = match error.rdkafka_error_code() {
            Some(code) => crate::error::snake_case(&format!("{code:?}")),
            None => "client".into(),
        };
        if let Some(repeats) = self.0.lock().admit(&kind, Instant::now()) {
            tracing::warn!(%error, reason, kind, repeats, "Kafka client error.");
        }
    }

    /// One of librdkafka's own log lines: warnings and worse throttled per facility, the rest at
    /// debug level.
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if level as i32 > RDKafkaLogLevel::Warning as i32 {
            tracing::debug!(facility, "librdkafka: {message}");
            return;
        }
        if let Some(repeats) = self.0.lock().admit(facility, Instant::now()) {
            tracing::warn!(facility, repeats, "librdkafka: {message}");
        }
    }
}

/// The context of Weir's helper clients (admin, changelog and control-topic clients): nothing but
/// throttled logging.
#[derive(Debug, Default)]
pub(crate) struct QuietContext {
    log: ClientLog,
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: RdError, reason: &str) {
        self.log.error(&error, reason);
    }
}

impl ConsumerContext for QuietContext {}

impl ProducerContext for QuietContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _result: &DeliveryResult<'_>, _opaque: ()) {}
}
