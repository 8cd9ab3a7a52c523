//! The server's Prometheus metrics, served as text on /metrics.
//!
//! One registry per server (not the process-global default), so that several
//! servers in one test process do not mix their counts.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Counters, histograms and gauges the transport keeps up to date.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// GraphQL operations by transport (`http`, `ws`) and outcome (`ok`, `error`).
    pub requests: IntCounterVec,
    /// Seconds to answer one HTTP GraphQL request (batch included).
    pub latency: HistogramVec,
    /// GraphQL errors by `extensions.code` (`NONE` when a resolver set none).
    pub errors: IntCounterVec,
    /// HTTP requests refused before GraphQL ran, by reason.
    pub refused: IntCounterVec,
    pub open_subscriptions: IntGauge,
    pub open_websockets: IntGauge,
    /// Events between the log head and what a projection has folded, by projection.
    pub projection_lag: IntGaugeVec,
    /// Events between the log head and each consumer of the node's log
    /// follower, by consumer name.
    pub log_consumer_lag: IntGaugeVec,
    pub log_head: IntGauge,
    /// Subscribers of the node's live absence feed.
    pub live_subscribers: IntGauge,
    /// Access-log entries dropped since start because the writer fell behind.
    pub access_log_dropped: IntGauge,
    /// GraphQL requests holding an admission place.
    pub admission_in_flight: IntGauge,
    /// Requests and WebSocket operations refused by admission control or a
    /// per-person limit, by reason.
    pub admission_refused: IntCounterVec,
    /// Seconds a request waited in the admission queue (only those that had to).
    pub admission_queue_wait: Histogram,
    /// Notifications since start by outcome (`enqueued`, `delivered`,
    /// `retried`, `failed`, `subscription_dropped`), issue 16.
    pub notifications: IntGaugeVec,
    /// cluster (issue 12): GraphQL requests sent whole to another node, by
    /// reason (`home`: about someone whose schools it folds; `elsewhere`:
    /// decided nowhere here) and outcome (`answered`, `unavailable`).
    pub forwarded: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("registre".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("graphql_requests_total", "GraphQL operations handled"),
            &["transport", "outcome"],
        );
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer a GraphQL HTTP request",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["kind"],
        );
        let errors = IntCounterVec::new(
            Opts::new("graphql_errors_total", "GraphQL errors by extensions.code"),
            &["code"],
        );
        let refused = IntCounterVec::new(
            Opts::new("http_refused_total", "Requests refused before execution"),
            &["reason"],
        );
        let open_subscriptions =
            IntGauge::new("open_subscriptions", "Active GraphQL subscriptions");
        let open_websockets = IntGauge::new("open_websockets", "Open WebSocket connections");
        let projection_lag = IntGaugeVec::new(
            Opts::new(
                "projection_lag_events",
                "Events the read model is behind the log head",
            ),
            &["projection"],
        );
        let log_consumer_lag = IntGaugeVec::new(
            Opts::new(
                "log_consumer_lag_events",
                "Events a consumer of the node's log follower is behind the log head",
            ),
            &["consumer"],
        );
        let log_head = IntGauge::new("log_head_position", "Last committed log position seen");
        let live_subscribers = IntGauge::new(
            "live_absence_subscribers",
            "Subscribers of the node's live absence feed",
        );
        let access_log_dropped = IntGauge::new(
            "access_log_dropped",
            "Access-log entries dropped since start (writer behind)",
        );
        let admission_in_flight = IntGauge::new(
            "admission_in_flight",
            "GraphQL requests holding an admission place",
        );
        let admission_refused = IntCounterVec::new(
            Opts::new(
                "admission_refused_total",
                "Requests refused as RATE_LIMITED by admission control or a per-person limit",
            ),
            &["reason"],
        );
        let admission_queue_wait = Histogram::with_opts(
            HistogramOpts::new(
                "admission_queue_wait_seconds",
                "Time a request waited for an admission place",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
            ]),
        );
        let notifications = IntGaugeVec::new(
            Opts::new(
                "notifications_total",
                "Notifications outside the app since start, by outcome",
            ),
            &["outcome"],
        );
        let forwarded = IntCounterVec::new(
            Opts::new(
                "forwarded_requests_total",
                "GraphQL requests sent whole to the node holding what they read",
            ),
            &["reason", "outcome"],
        );
        let metrics = Metrics {
            registry,
            forwarded: forwarded?,
            notifications: notifications?,
            admission_in_flight: admission_in_flight?,
            admission_refused: admission_refused?,
            admission_queue_wait: admission_queue_wait?,
            requests: requests?,
            latency: latency?,
            errors: errors?,
            refused: refused?,
            open_subscriptions: open_subscriptions?,
            open_websockets: open_websockets?,
            projection_lag: projection_lag?,
            log_consumer_lag: log_consumer_lag?,
            log_head: log_head?,
            live_subscribers: live_subscribers?,
            access_log_dropped: access_log_dropped?,
        };
        for collector in [
            Box::new(metrics.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.latency.clone()),
            Box::new(metrics.errors.clone()),
            Box::new(metrics.refused.clone()),
            Box::new(metrics.open_subscriptions.clone()),
            Box::new(metrics.open_websockets.clone()),
            Box::new(metrics.projection_lag.clone()),
            Box::new(metrics.log_consumer_lag.clone()),
            Box::new(metrics.log_head.clone()),
            Box::new(metrics.live_subscribers.clone()),
            Box::new(metrics.access_log_dropped.clone()),
            Box::new(metrics.admission_in_flight.clone()),
            Box::new(metrics.admission_refused.clone()),
            Box::new(metrics.admission_queue_wait.clone()),
            Box::new(metrics.notifications.clone()),
            Box::new(metrics.forwarded.clone()),
        ] {
            metrics.registry.register(collector)?;
        }
        Ok(metrics)
    }

    /// Counts the errors of one GraphQL response by their `extensions.code`.
    pub fn observe_response(&self, transport: &str, response: &async_graphql::Response) {
        let outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        self.requests.with_label_values(&[transport, outcome]).inc();
        for error in &response.errors {
            let code = error
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(|v| match v {
                    async_graphql::Value::String(s) if !s.is_empty() => Some(s.clone()),
                    async_graphql::Value::Enum(n) => Some(n.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "NONE".into());
            self.errors.with_label_values(&[&code]).inc();
        }
    }

    /// Counts the errors of one result sent on a WebSocket (the `payload` of
    /// a `next` or legacy `data` message) by their `extensions.code`.
    pub fn observe_ws_result(&self, payload: &serde_json::Value) {
        let Some(errors) = payload.get("errors").and_then(|e| e.as_array()) else {
            return;
        };
        for error in errors {
            let code = error
                .pointer("/extensions/code")
                .and_then(|c| c.as_str())
                .filter(|c| !c.is_empty())
                .unwrap_or("NONE");
            self.errors.with_label_values(&[code]).inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_code() {
        let m = Metrics::new().expect("constant metric definitions");
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", "FORBIDDEN");
        let mut forbidden = async_graphql::ServerError::new("no", None);
        forbidden.extensions = Some(ext);
        let plain = async_graphql::ServerError::new("oops", None);
        let response = async_graphql::Response::from_errors(vec![forbidden, plain]);
        m.observe_response("http", &response);
        m.open_subscriptions.inc();
        let text = m.render();
        assert!(
            text.contains(r#"registre_graphql_errors_total{code="FORBIDDEN"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"registre_graphql_errors_total{code="NONE"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"registre_graphql_requests_total{outcome="error",transport="http"} 1"#)
        );
        assert!(text.contains("registre_open_subscriptions 1"));

        m.observe_ws_result(&serde_json::json!({
            "data": null,
            "errors": [{ "message": "no", "extensions": { "code": "FORBIDDEN" } }]
        }));
        m.observe_ws_result(&serde_json::json!({ "data": { "x": 1 } }));
        let text = m.render();
        assert!(
            text.contains(r#"registre_graphql_errors_total{code="FORBIDDEN"} 2"#),
            "{text}"
        );
    }
}
