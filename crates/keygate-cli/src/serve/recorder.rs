//! The `metrics` recorder of `keygate serve`: the Prometheus exporter's,
//! except for `keygate_verify_duration_seconds`, kept in fixed buckets.
//!
//! Every verification records its latency, cached ones included (well
//! under a microsecond of work). The exporter keeps each recorded value
//! until its upkeep folds them into buckets: an epoch-protected append
//! (~35 ns here) and memory growing between upkeeps. Here a value costs a
//! binary search over the bucket bounds and two relaxed atomic adds
//! (~10 ns), in fixed memory.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::PrometheusRecorder;

/// The Prometheus recorder, with `fixed` kept apart.
pub(super) struct ServeRecorder {
    pub(super) prometheus: PrometheusRecorder,
    pub(super) fixed: Arc<FixedHistogram>,
}

impl Recorder for ServeRecorder {
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
pub(super) struct FixedHistogram {
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
    pub(super) fn new(name: &'static str, bounds: &'static [f64]) -> Self {
        Self {
            name,
            help: OnceLock::new(),
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Appends the histogram to `out` in the Prometheus text format.
    pub(super) fn render(&self, out: &mut String) {
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
}

impl HistogramFn for FixedHistogram {
    fn record(&self, value: f64) {
        // The first bucket whose bound is at least the value (`le`).
        let i = self.bounds.partition_point(|&bound| bound < value);
        self.counts[i].fetch_add(1, Relaxed);
        // Negative and NaN values add 0.
        self.sum_nanos.fetch_add((value * 1e9) as u64, Relaxed);
    }

    fn record_many(&self, value: f64, count: usize) {
        let i = self.bounds.partition_point(|&bound| bound < value);
        self.counts[i].fetch_add(count as u64, Relaxed);
        let sum = (value * 1e9) as u64;
        self.sum_nanos
            .fetch_add(sum.saturating_mul(count as u64), Relaxed);
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
    fn the_one_histogram_is_kept_apart_the_rest_goes_to_prometheus() {
        let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = prometheus.handle();
        let fixed = Arc::new(FixedHistogram::new("fast_seconds", &BOUNDS));
        let recorder = ServeRecorder {
            prometheus,
            fixed: fixed.clone(),
        };
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!("fast_seconds", "Fast");
            metrics::histogram!("fast_seconds").record(0.005);
            metrics::histogram!("slow_seconds").record(0.5);
            metrics::counter!("things_total").increment(3);
        });
        let text = handle.render();
        assert!(!text.contains("fast_seconds"), "{text}");
        assert!(text.contains("slow_seconds"), "{text}");
        assert!(text.contains("things_total 3"), "{text}");
        let mut out = String::new();
        fixed.render(&mut out);
        assert!(out.starts_with("# HELP fast_seconds Fast\n"), "{out}");
        assert!(out.contains("fast_seconds_count 1\n"), "{out}");
    }
}
