//! Prometheus metrics (`GET /health/metrics`, text exposition format 0.0.4, by the
//! `prometheus` crate).
//!
//! Route functions are stateless and share no memory, so the figures live where they can be
//! counted: **requests** (by route and status, latency, bytes in and out) are counted by the
//! host that runs the functions — `vaultx-runtime` for all its components, the Worker for
//! its isolate — as an edge platform counts them, with [`RequestMetrics`]; the **domain**
//! figures (files, deduplication, compression, jobs, replication, breakers) are read from the
//! stores by the `health-metrics` function on each scrape. The host appends its families to
//! that function's answer, so one scrape gets both.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
pub use prometheus::{IntCounter, IntGauge};

/// The exposition format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets, in seconds: from a cached small read to a large upload's chunk.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Methods keep their name in labels; anything else is `other` (a client cannot grow the
/// number of series).
fn method_label(method: &str) -> &str {
    match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => "other",
    }
}

/// The host's request families.
pub struct RequestMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    memory_peak: IntGaugeVec,
    instances_started: IntCounterVec,
    pool_in_use: IntGaugeVec,
    pool_capacity: IntGaugeVec,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestMetrics {
    pub fn new() -> Self {
        let requests = IntCounterVec::new(
            Opts::new("vaultx_http_requests_total", "HTTP requests answered, by route, method and status."),
            &["component", "route", "method", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("vaultx_http_request_duration_seconds", "Time from a request's arrival to its response head (a streamed body goes on after).")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["component"],
        )
        .expect("valid metric");
        let bytes_in = IntCounterVec::new(Opts::new("vaultx_http_request_bytes_total", "Request body bytes read."), &["component"]).expect("valid metric");
        let bytes_out = IntCounterVec::new(Opts::new("vaultx_http_response_bytes_total", "Response body bytes sent."), &["component"]).expect("valid metric");
        let memory_peak = IntGaugeVec::new(
            Opts::new("vaultx_instance_memory_peak_bytes", "The largest linear memory one instance of the component has had, in bytes (a streamed download holds one block, whatever the file's size)."),
            &["component"],
        )
        .expect("valid metric");
        let instances_started = IntCounterVec::new(
            Opts::new("vaultx_instances_started_total", "Component instances started: an HTTP component's serves up to --max-instance-reuse-count requests, a job component's one message."),
            &["component"],
        )
        .expect("valid metric");
        let pool_in_use = IntGaugeVec::new(
            Opts::new("vaultx_instance_pool_in_use", "Slots of the instance pool in use, by kind (component instances, memories, tables, stacks); a request that needs one more instance than the pool holds is answered 503."),
            &["kind"],
        )
        .expect("valid metric");
        let pool_capacity = IntGaugeVec::new(Opts::new("vaultx_instance_pool_capacity", "Slots of the instance pool, by kind (--max-instances)."), &["kind"]).expect("valid metric");
        let registry = Registry::new();
        for family in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(bytes_in.clone()),
            Box::new(bytes_out.clone()),
            Box::new(memory_peak.clone()),
            Box::new(instances_started.clone()),
            Box::new(pool_in_use.clone()),
            Box::new(pool_capacity.clone()),
        ] {
            registry.register(family).expect("distinct metric names");
        }
        Self { registry, requests, duration, bytes_in, bytes_out, memory_peak, instances_started, pool_in_use, pool_capacity }
    }

    /// Counts one answered request (its head is ready after `seconds`).
    pub fn observe(&self, component: &str, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests.with_label_values(&[component, route, method_label(method), &status.to_string()]).inc();
        self.duration.with_label_values(&[component]).observe(seconds);
    }

    /// The counter of body bytes a component reads, for a body wrapper to add to as it goes.
    pub fn bytes_in(&self, component: &str) -> IntCounter {
        self.bytes_in.with_label_values(&[component])
    }

    /// The counter of body bytes a component sends.
    pub fn bytes_out(&self, component: &str) -> IntCounter {
        self.bytes_out.with_label_values(&[component])
    }

    /// The gauge of a component's largest instance memory, for the host to raise as
    /// instances grow (only hosts that see guest memory have it: `vaultx-runtime`).
    pub fn memory_peak(&self, component: &str) -> IntGauge {
        self.memory_peak.with_label_values(&[component])
    }

    /// The counter of a component's instances started (`vaultx-runtime` only: the host makes
    /// them).
    pub fn instances_started(&self, component: &str) -> IntCounter {
        self.instances_started.with_label_values(&[component])
    }

    /// How many slots of one kind the host's instance pool has in use, of how many
    /// (`vaultx-runtime` only: the host makes the instances).
    pub fn instance_pool(&self, kind: &str, in_use: u64, capacity: u64) {
        self.pool_in_use.with_label_values(&[kind]).set(in_use as i64);
        self.pool_capacity.with_label_values(&[kind]).set(capacity as i64);
    }

    /// The families in the text format.
    pub fn render(&self) -> String {
        encode(&self.registry)
    }
}

/// A registry's families in the text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for families the registry accepted.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let m = RequestMetrics::new();
        m.observe("file", "/api/files/:id", "GET", 200, 0.002);
        m.observe("file", "/api/files/:id", "GET", 200, 0.004);
        m.observe("file", "/api/files/:id", "BREW", 405, 0.001);
        m.bytes_out("file").inc_by(10);
        let text = m.render();
        assert!(text.contains(r#"vaultx_http_requests_total{component="file",method="GET",route="/api/files/:id",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"vaultx_http_requests_total{component="file",method="other",route="/api/files/:id",status="405"} 1"#), "{text}");
        assert!(text.contains(r#"vaultx_http_request_duration_seconds_bucket{component="file",le="0.0025"} 2"#), "{text}");
        assert!(text.contains(r#"vaultx_http_request_duration_seconds_count{component="file"} 3"#), "{text}");
        assert!(text.contains(r#"vaultx_http_response_bytes_total{component="file"} 10"#), "{text}");
    }
}
