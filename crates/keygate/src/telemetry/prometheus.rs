//! A Prometheus recorder for keygate's metrics (feature `prometheus`), as
//! `keygate serve` uses it: `metrics-exporter-prometheus` (no listener of
//! its own: render where you like), except for [`VERIFY_DURATION_SECONDS`],
//! kept in fixed buckets ([`VERIFY_DURATION_BUCKETS`]).
//!
//! Every verification records its latency, cached ones included (well
//! under a microsecond of work). The exporter keeps each recorded value
//! until its upkeep folds them into buckets: an epoch-protected append
//! (from ~35 ns on one thread to hundreds under concurrency, measured on a
//! 2-core VM) and memory growing between upkeeps. Here a value costs a
//! binary search over the bucket bounds and two relaxed atomic adds
//! (~10 ns), in fixed memory.
//!
//! ```
//! use keygate::telemetry::prometheus::Prometheus;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use keygate::{ApiKeyService, InMemoryRepository};
//! // Before building the services: they take their handles then.
//! let prometheus = Prometheus::install().unwrap();
//! let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
//! let _ = service.verify("ak_v1-0123456789abcdef-NoSuchSecret0123456789", &[""; 0]).await;
//! // Every few seconds: prometheus.run_upkeep(). Then, on GET /metrics:
//! service.update_gauges();
//! let text = prometheus.render();
//! assert!(text.contains("keygate_verifications_total{outcome=\"not_found\"} 1"));
//! assert!(text.contains("keygate_verify_duration_seconds_count 1"));
//! # });
//! ```

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::{VERIFY_DURATION_BUCKETS, VERIFY_DURATION_SECONDS};

/// Renders what [`KeygateRecorder`] recorded. Cheap to clone.
#[derive(Clone)]
pub struct Prometheus {
    handle: PrometheusHandle,
    latency: Arc<FixedHistogram>,
}

impl fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prometheus").finish_non_exhaustive()
    }
}

/// [`Prometheus::install`] found a `metrics` recorder already installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyInstalled;

impl fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a metrics recorder is already installed")
    }
}

impl std::error::Error for AlreadyInstalled {}

impl Prometheus {
    /// A recorder and what renders it, without installing the recorder
    /// (for `metrics::with_local_recorder`, or to wrap it).
    pub fn build() -> (KeygateRecorder, Self) {
        let prometheus = PrometheusBuilder::new().build_recorder();
        let handle = prometheus.handle();
        let latency = Arc::new(FixedHistogram::new(
            VERIFY_DURATION_SECONDS,
            &VERIFY_DURATION_BUCKETS,
        ));
        let recorder = KeygateRecorder {
            prometheus,
            fixed: latency.clone(),
        };
        (recorder, Self { handle, latency })
    }

    /// Installs the recorder for the whole process. Call it before building
    /// the services, and [`run_upkeep`](Self::run_upkeep) every few seconds.
    ///
    /// # Errors
    /// When a `metrics` recorder is already installed.
    pub fn install() -> Result<Self, AlreadyInstalled> {
        let (recorder, prometheus) = Self::build();
        metrics::set_global_recorder(recorder).map_err(|_| AlreadyInstalled)?;
        Ok(prometheus)
    }

    /// Everything recorded, in the Prometheus text format (0.0.4). Call
    /// [`ApiKeyService::update_gauges`](crate::ApiKeyService::update_gauges)
    /// first.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        self.latency.render(&mut text);
        text
    }

    /// Folds the values of the histograms the exporter keeps into buckets
    /// (their memory grows until then) and publishes new descriptions:
    /// call it every few seconds (`keygate serve`: every 5 s).
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// The `metrics` recorder of [`Prometheus`]: `metrics-exporter-prometheus`'s,
/// with the verification latency histogram in fixed buckets.
pub struct KeygateRecorder {
    prometheus: PrometheusRecorder,
    fixed: Arc<FixedHistogram>,
}

impl fmt::Debug for KeygateRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeygateRecorder").finish_non_exhaustive()
    }
}

impl Recorder for KeygateRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if key.as_str() == self.fixed.name {
            let _ = self.fixed.help.set(description.into_owned());
        } else {
            self.prometheus.describe_histogram(key, unit, description);
        }
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.prometheus.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.prometheus.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if key.name() == self.fixed.name && key.labels().next().is_none() {
            Histogram::from_arc(self.fixed.clone())
        } else {
            self.prometheus.register_histogram(key, metadata)
        }
    }
}

/// A histogram without labels, with fixed bucket bounds.
struct FixedHistogram {
    name: &'static str,
    help: OnceLock<String>,
    bounds: &'static [f64],
    /// Per bucket, not cumulative; the last one counts the values above
    /// every bound.
    counts: Box<[AtomicU64]>,
    /// The sum, in billionths (nanoseconds for a histogram of seconds).
    sum_nanos: AtomicU64,
}

impl FixedHistogram {
    fn new(name: &'static str, bounds: &'static [f64]) -> Self {
        Self {
            name,
            help: OnceLock::new(),
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Appends the histogram to `out` in the Prometheus text format.
    fn render(&self, out: &mut String) {
        let name = self.name;
        if let Some(help) = self.help.get() {
            let help = help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {name} {help}");
        }
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Relaxed);
            let le = self.bounds.get(i).map_or("+Inf".to_owned(), f64::to_string);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}\n");
    }

    /// The bucket of `value`: the first whose bound is at least the value
    /// (`le`).
    fn bucket(&self, value: f64) -> &AtomicU64 {
        &self.counts[self.bounds.partition_point(|&bound| bound < value)]
    }
}

impl HistogramFn for FixedHistogram {
    fn record(&self, value: f64) {
        self.bucket(value).fetch_add(1, Relaxed);
        // Negative and NaN values add 0.
        self.sum_nanos.fetch_add((value * 1e9) as u64, Relaxed);
    }

    fn record_many(&self, value: f64, count: usize) {
        self.bucket(value).fetch_add(count as u64, Relaxed);
        let sum = ((value * 1e9) as u64).saturating_mul(count as u64);
        self.sum_nanos.fetch_add(sum, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];

    #[test]
    fn values_count_in_the_first_bucket_at_least_as_large() {
        let h = FixedHistogram::new("t_seconds", &BOUNDS);
        let _ = h.help.set("A test".to_owned());
        for v in [0.0005, 0.001, 0.002, 0.05, 3.0] {
            h.record(v);
        }
        h.record_many(0.01, 2);
        let mut out = String::new();
        h.render(&mut out);
        assert_eq!(
            out,
            "# HELP t_seconds A test\n\
             # TYPE t_seconds histogram\n\
             t_seconds_bucket{le=\"0.001\"} 2\n\
             t_seconds_bucket{le=\"0.01\"} 5\n\
             t_seconds_bucket{le=\"0.1\"} 6\n\
             t_seconds_bucket{le=\"+Inf\"} 7\n\
             t_seconds_sum 3.0735\n\
             t_seconds_count 7\n\n"
        );
    }

    #[test]
    fn the_latency_histogram_is_kept_apart_the_rest_goes_to_the_exporter() {
        let (recorder, prometheus) = Prometheus::build();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!(VERIFY_DURATION_SECONDS, "Fast");
            metrics::histogram!(VERIFY_DURATION_SECONDS).record(0.000_005);
            metrics::histogram!("slow_seconds").record(0.5);
            metrics::counter!("things_total").increment(3);
        });
        let text = prometheus.render();
        assert!(text.contains("things_total 3"), "{text}");
        assert!(text.contains("slow_seconds"), "{text}");
        let name = VERIFY_DURATION_SECONDS;
        assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1);
        assert!(text.contains(&format!("# HELP {name} Fast\n")), "{text}");
        assert!(text.contains(&format!("{name}_bucket{{le=\"0.00001\"}} 1\n")));
        assert!(text.contains(&format!("{name}_count 1\n")), "{text}");
    }
}
