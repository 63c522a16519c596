//! Prometheus metrics of the gateway, served as text on the admin listener.

use std::sync::{Arc, OnceLock};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The gateway's metrics; cheap to clone (every field is a shared handle).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub active_requests: IntGauge,
    pub open_connections: IntGauge,
    pub refused_connections: IntCounterVec,
    /// Handles of `requests` and `duration`, resolved at first use, so that
    /// counting a request does not hash its labels.
    resolved: Arc<[RouteHandles; RouteClass::ALL.len()]>,
}

#[derive(Default)]
struct RouteHandles {
    duration: OnceLock<Histogram>,
    by_status: [OnceLock<IntCounter>; STATUS_LABELS.len()],
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "idgate_requests_total",
                "Requests answered, by route class and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "idgate_request_duration_seconds",
                "Time from request head to the end of the response, by route class",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "idgate_upstream_errors_total",
                "Failed upstream exchanges, by kind",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let active_requests = IntGauge::new(
            "idgate_active_requests",
            "Requests in flight, WebSocket and streaming exchanges included",
        )
        .expect("valid metric");
        let open_connections = IntGauge::new(
            "idgate_open_connections",
            "Client connections open on the public listener",
        )
        .expect("valid metric");
        let refused_connections = IntCounterVec::new(
            Opts::new(
                "idgate_refused_connections_total",
                "Client connections ended on a request head that does not parse, or on a failed TLS handshake, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(active_requests.clone()),
            Box::new(open_connections.clone()),
            Box::new(refused_connections.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            requests,
            duration,
            upstream_errors,
            active_requests,
            open_connections,
            refused_connections,
            resolved: Arc::new(Default::default()),
        }
    }

    /// Counts one answered request and how long it took.
    pub fn finished(&self, route: RouteClass, status: u16, seconds: f64) {
        let handles = &self.resolved[route as usize];
        let status = status_index(status);
        handles.by_status[status]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[route.label(), STATUS_LABELS[status]])
            })
            .inc();
        handles
            .duration
            .get_or_init(|| self.duration.with_label_values(&[route.label()]))
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding of gathered metrics");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Which kind of route answered a request, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Forwarded to the upstream.
    Proxy,
    /// Refused by the gateway before routing (size limits).
    Rejected,
    /// The login page and the login flow.
    Login,
    /// The gateway's own `/.idgate/*` endpoints.
    Internal,
    /// Proxied routes refused for want of a session.
    Unauthenticated,
}

impl RouteClass {
    const ALL: [RouteClass; 5] = [
        RouteClass::Proxy,
        RouteClass::Rejected,
        RouteClass::Login,
        RouteClass::Internal,
        RouteClass::Unauthenticated,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RouteClass::Proxy => "proxy",
            RouteClass::Rejected => "rejected",
            RouteClass::Login => "login",
            RouteClass::Internal => "internal",
            RouteClass::Unauthenticated => "unauthenticated",
        }
    }
}

/// Status labels from a fixed set, so a metric never grows without bound.
const STATUS_LABELS: [&str; 23] = [
    "none", "101", "200", "204", "206", "301", "302", "304", "400", "401", "403", "404", "414",
    "431", "500", "502", "503", "504", "1xx", "2xx", "3xx", "4xx", "5xx",
];

fn status_index(status: u16) -> usize {
    match status {
        0 => 0,
        101 => 1,
        200 => 2,
        204 => 3,
        206 => 4,
        301 => 5,
        302 => 6,
        304 => 7,
        400 => 8,
        401 => 9,
        403 => 10,
        404 => 11,
        414 => 12,
        431 => 13,
        500 => 14,
        502 => 15,
        503 => 16,
        504 => 17,
        s if s < 200 => 18,
        s if s < 300 => 19,
        s if s < 400 => 20,
        s if s < 500 => 21,
        _ => 22,
    }
}

/// Counts one request in flight (or one open connection) for as long as
/// it lives.
pub struct InFlight(IntGauge);

impl InFlight {
    pub fn start(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
