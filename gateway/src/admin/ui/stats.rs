//! Recent traffic per funko for the overview (request rate, share of 5xx, p99 and a sparkline),
//! from the gateway's own Prometheus counters.
//!
//! A background task samples the counters every [`SAMPLE_EVERY`] and keeps [`KEPT`] samples per
//! funko (five minutes). Pages only read the samples under a short lock; nothing here touches
//! the request path, which keeps counting into Prometheus as before. With `metrics: false` there
//! are no counters, and the overview says so.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::core::Collector;

/// How often the counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept per funko: five minutes' worth, plus the one they are measured from.
pub const KEPT: usize = 61;
/// The window of the request rate shown as "now".
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// A funko's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    pub requests: u64,
    /// Responses with a 5xx status.
    pub errors: u64,
    /// The duration histogram's cumulative bucket counts, in the order of [`Recent::bounds`].
    pub buckets: Vec<u64>,
}

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    counts: Counts,
}

/// What the overview shows for one funko.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Requests per second over the last [`RATE_WINDOW`] (or as much of it as was sampled).
    pub rate: f64,
    /// Share of 5xx responses over the kept window; `None` without requests.
    pub error_share: Option<f64>,
    /// 99th percentile of the duration over the kept window, in seconds; `None` without requests.
    pub p99: Option<f64>,
    /// Requests per second in each sampled interval, oldest first.
    pub rates: Vec<f64>,
}

/// The kept samples of every funko.
#[derive(Debug, Default)]
pub struct Recent {
    /// Upper bounds of the duration histogram's buckets (without `+Inf`).
    bounds: Mutex<Vec<f64>>,
    funkos: Mutex<HashMap<String, VecDeque<Sample>>>,
    /// When the last sample was taken.
    last_at: Mutex<Option<Instant>>,
}

impl Recent {
    /// Records one sample of every funko's counters; funkos no longer counted are forgotten.
    pub fn record(&self, at: Instant, bounds: Vec<f64>, counts: HashMap<String, Counts>) {
        *self.bounds.lock().unwrap_or_else(|p| p.into_inner()) = bounds;
        let previous = self
            .last_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(at);
        let mut funkos = self.funkos.lock().unwrap_or_else(|p| p.into_inner());
        funkos.retain(|name, _| counts.contains_key(name));
        for (name, counts) in counts {
            let samples = funkos.entry(name).or_default();
            // A funko's series begin at zero with its first request: one that was not there at
            // the last sample counted from zero since then.
            if samples.is_empty()
                && let Some(previous) = previous
            {
                samples.push_back(Sample {
                    at: previous,
                    counts: Counts {
                        requests: 0,
                        errors: 0,
                        buckets: vec![0; counts.buckets.len()],
                    },
                });
            }
            // Counters that went back (the series was removed and made again) start over.
            if samples
                .back()
                .is_some_and(|last| last.counts.requests > counts.requests)
            {
                samples.clear();
            }
            samples.push_back(Sample { at, counts });
            while samples.len() > KEPT {
                samples.pop_front();
            }
        }
    }

    /// What the overview shows for `funko`; `None` before two samples of it exist.
    pub fn summary(&self, funko: &str) -> Option<Summary> {
        let bounds = self
            .bounds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut funkos = self.funkos.lock().unwrap_or_else(|p| p.into_inner());
        summarize(funkos.get_mut(funko)?.make_contiguous(), &bounds)
    }
}

fn summarize(samples: &[Sample], bounds: &[f64]) -> Option<Summary> {
    let (first, last) = (samples.first()?, samples.last()?);
    if samples.len() < 2 {
        return None;
    }
    let since = last.at.checked_sub(RATE_WINDOW).unwrap_or(first.at);
    let from = samples
        .iter()
        .find(|s| s.at >= since)
        .filter(|s| s.at < last.at)
        .unwrap_or(first);
    let rate = per_second(from, last);
    let requests = last.counts.requests.saturating_sub(first.counts.requests);
    let errors = last.counts.errors.saturating_sub(first.counts.errors);
    let error_share = (requests > 0).then(|| errors as f64 / requests as f64);
    let deltas: Vec<u64> = last
        .counts
        .buckets
        .iter()
        .zip(first.counts.buckets.iter().chain(std::iter::repeat(&0)))
        .map(|(now, then)| now.saturating_sub(*then))
        .collect();
    let p99 = quantile(0.99, bounds, &deltas, requests);
    let rates = samples
        .windows(2)
        .map(|w| per_second(&w[0], &w[1]))
        .collect();
    Some(Summary {
        rate,
        error_share,
        p99,
        rates,
    })
}

fn per_second(from: &Sample, to: &Sample) -> f64 {
    let seconds = to.at.duration_since(from.at).as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    to.counts.requests.saturating_sub(from.counts.requests) as f64 / seconds
}

/// The `q` quantile from cumulative bucket counts (`cumulative[i]` requests took at most
/// `bounds[i]`) out of `total`, interpolated within its bucket as Prometheus'
/// `histogram_quantile` does; a quantile beyond the last bound is that bound.
pub fn quantile(q: f64, bounds: &[f64], cumulative: &[u64], total: u64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for (bound, count) in bounds.iter().zip(cumulative) {
        if *count as f64 >= rank {
            let (low_bound, low_count) = lower;
            let in_bucket = (*count - low_count) as f64;
            if in_bucket <= 0.0 {
                return Some(*bound);
            }
            return Some(low_bound + (bound - low_bound) * (rank - low_count as f64) / in_bucket);
        }
        lower = (*bound, *count);
    }
    bounds.last().copied()
}

/// The points of an SVG polyline drawing `values` in a `width` x `height` box of `slots` evenly
/// spaced places, the newest value at the right edge (so a funko seen for a minute fills the
/// right fifth of a five-minute line). The highest value touches the top; all zero is a flat
/// line at the bottom.
pub fn sparkline(values: &[f64], slots: usize, width: f64, height: f64) -> String {
    let slots = slots.max(values.len());
    let max = values.iter().copied().fold(0.0, f64::max);
    let step = if slots > 1 {
        width / (slots - 1) as f64
    } else {
        0.0
    };
    let first = (slots - values.len()) as f64;
    let mut points = String::with_capacity(values.len() * 12);
    for (i, value) in values.iter().enumerate() {
        let y = if max > 0.0 {
            height - value / max * (height - 1.0)
        } else {
            height
        };
        if i > 0 {
            points.push(' ');
        }
        points.push_str(&format!("{:.1},{:.1}", (first + i as f64) * step, y));
    }
    points
}

/// Reads every funko's counters from the metric registry: the bucket bounds and the counts.
pub fn read_counters() -> Option<(Vec<f64>, HashMap<String, Counts>)> {
    let metrics = crate::metrics::if_enabled()?;
    let mut counts: HashMap<String, Counts> = HashMap::new();
    let mut bounds = Vec::new();
    for family in metrics.duration.collect() {
        for metric in &family.metric {
            let Some(funko) = label(metric, "funko") else {
                continue;
            };
            let buckets = &metric.histogram.bucket;
            if bounds.is_empty() {
                bounds = buckets.iter().map(|b| b.upper_bound()).collect();
            }
            let entry = counts.entry(funko.to_string()).or_insert(Counts {
                requests: 0,
                errors: 0,
                buckets: Vec::new(),
            });
            entry.buckets = buckets.iter().map(|b| b.cumulative_count()).collect();
        }
    }
    let requests = metrics.requests.collect();
    for family in requests.iter().chain(&metrics.requests_release.collect()) {
        for metric in &family.metric {
            let (Some(funko), Some(code)) = (label(metric, "funko"), label(metric, "code")) else {
                continue;
            };
            let value = metric.counter.value() as u64;
            let entry = counts.entry(funko.to_string()).or_insert(Counts {
                requests: 0,
                errors: 0,
                buckets: Vec::new(),
            });
            entry.requests += value;
            if code.starts_with('5') {
                entry.errors += value;
            }
        }
    }
    counts.remove(crate::metrics::UNKNOWN_FUNKO);
    Some((bounds, counts))
}

fn label<'m>(metric: &'m prometheus::proto::Metric, name: &str) -> Option<&'m str> {
    metric
        .label
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

/// The background task that samples the counters.
pub struct Sampler {
    pub recent: Arc<Recent>,
}

#[async_trait]
impl BackgroundService for Sampler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
            if let Some((bounds, counts)) = read_counters() {
                self.recent.record(Instant::now(), bounds, counts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u64, errors: u64, buckets: &[u64]) -> HashMap<String, Counts> {
        HashMap::from([(
            "hello".to_string(),
            Counts {
                requests,
                errors,
                buckets: buckets.to_vec(),
            },
        )])
    }

    #[test]
    fn rate_error_share_and_p99_come_from_the_window() {
        let recent = Recent::default();
        let bounds = vec![0.01, 0.1, 1.0];
        let start = Instant::now();
        recent.record(start, bounds.clone(), counts(1000, 0, &[1000, 1000, 1000]));
        assert_eq!(recent.summary("hello"), None, "one sample says nothing yet");
        // 10 s later: 200 more requests, 10 of them 5xx; 190 fast, 8 under 100 ms, 2 under 1 s.
        recent.record(
            start + Duration::from_secs(10),
            bounds.clone(),
            counts(1200, 10, &[1190, 1198, 1200]),
        );
        let summary = recent.summary("hello").unwrap();
        assert!((summary.rate - 20.0).abs() < 1e-9, "{summary:?}");
        assert_eq!(summary.error_share, Some(0.05));
        // Rank 198 of 200 is the last of the 8 in (0.01, 0.1].
        let p99 = summary.p99.unwrap();
        assert!((p99 - 0.1).abs() < 1e-9, "{p99}");
        assert_eq!(summary.rates.len(), 1);
        assert_eq!(recent.summary("other"), None);
    }

    #[test]
    fn old_samples_go_and_so_do_funkos_no_longer_counted() {
        let recent = Recent::default();
        let start = Instant::now();
        for i in 0..(KEPT as u64 + 10) {
            recent.record(
                start + SAMPLE_EVERY * i as u32,
                vec![1.0],
                counts(i * 50, 0, &[i * 50]),
            );
        }
        let summary = recent.summary("hello").unwrap();
        assert_eq!(summary.rates.len(), KEPT - 1);
        assert!((summary.rate - 10.0).abs() < 1e-9, "{summary:?}");
        recent.record(start, vec![1.0], HashMap::new());
        assert_eq!(recent.summary("hello"), None);
    }

    #[test]
    fn a_funko_that_appears_between_samples_counts_from_zero() {
        let recent = Recent::default();
        let start = Instant::now();
        recent.record(start, vec![1.0], HashMap::new());
        recent.record(start + SAMPLE_EVERY, vec![1.0], counts(50, 5, &[50]));
        let summary = recent.summary("hello").unwrap();
        assert!((summary.rate - 10.0).abs() < 1e-9, "{summary:?}");
        assert_eq!(summary.error_share, Some(0.1));
    }

    #[test]
    fn counters_that_went_back_start_over() {
        let recent = Recent::default();
        let start = Instant::now();
        recent.record(start, vec![1.0], counts(500, 0, &[500]));
        recent.record(start + SAMPLE_EVERY, vec![1.0], counts(10, 0, &[10]));
        assert_eq!(recent.summary("hello"), None);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let bounds = [0.1, 0.2];
        assert_eq!(quantile(0.5, &bounds, &[0, 0], 0), None);
        // 100 requests all in (0.1, 0.2]: the median is halfway.
        let q = quantile(0.5, &bounds, &[0, 100], 100).unwrap();
        assert!((q - 0.15).abs() < 1e-9, "{q}");
        // Beyond the last bound: the last bound.
        assert_eq!(quantile(0.99, &bounds, &[10, 20], 100), Some(0.2));
    }

    #[test]
    fn sparklines_fit_their_box() {
        assert_eq!(sparkline(&[0.0, 0.0], 2, 10.0, 5.0), "0.0,5.0 10.0,5.0");
        assert_eq!(sparkline(&[1.0, 2.0], 2, 10.0, 5.0), "0.0,3.0 10.0,1.0");
        assert_eq!(sparkline(&[], 2, 10.0, 5.0), "");
        // Two values of five slots sit at the right end.
        assert_eq!(sparkline(&[1.0, 1.0], 5, 10.0, 5.0), "7.5,1.0 10.0,1.0");
    }
}
